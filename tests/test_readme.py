"""README's task table says what the task table in ``data/tasks.py`` holds."""

from __future__ import annotations

import re
from pathlib import Path

from data.tasks import TASKS

README = Path(__file__).resolve().parents[1] / "README.md"


def _task_rows() -> dict[str, list[str]]:
    section = README.read_text().split("## Tasks", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_readme_lists_every_task_with_its_prefix_and_config() -> None:
    rows = _task_rows()
    assert sorted(rows) == sorted(TASKS)
    for name, (prefix, _suffix, _metric, config) in rows.items():
        task = TASKS[name]
        assert prefix == f"`{task.prefix_template}`", name
        assert f"configs/tiny/{config.strip('`')}" == task.config, name
        assert Path(README.parent / task.config).is_file()


def test_the_readme_names_each_tasks_metric() -> None:
    spoken = {
        "cider": "CIDEr", "vqa_accuracy": "VQA accuracy", "anls": "ANLS", "relaxed_accuracy": "relaxed accuracy",
        "ocr_exact_match": "exact match", "coco_map": "COCO mAP", "field_f1": "field F1", "miou": "mIoU",
    }  # fmt: skip
    for name, (_prefix, _suffix, metric, _config) in _task_rows().items():
        assert re.search(re.escape(spoken[TASKS[name].metric]), metric), f"{name}: {metric}"
