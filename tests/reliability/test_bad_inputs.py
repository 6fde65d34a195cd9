"""Every kind of bad input is refused by the command a user runs, pointing at the file, line
and field, and nothing downstream changes: no dataset version, no run folder, no MLflow
store, no report or scores file, the registry as it was.

The cases are the builders of ``bad_inputs.py``; docs/reliability.md's table lists the same ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from data.synthetic import SplitSizes, write_synthetic
from data.versioning import ensure_repo, version_dataset
from models.tiny_base import TinyBaseSpec, build_tiny_base
from tests.reliability.bad_inputs import Attempt, Bench
from tests.reliability.catalogue import STAGES, BadInput, bad_inputs
from tests.reliability.support import adapter_of, file_hashes, registry_state, registry_with_a_champion

CASES = bad_inputs()
TEMPLATE_SIZES = SplitSizes(train=4, val=2, test=2)
TEMPLATES = ("vqa", "detect", "extract")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Bench:
    root = tmp_path_factory.mktemp("bench")
    ws = root / "ws"
    ensure_repo(ws, ws / "dvc-remote")
    version_dataset(ws, write_synthetic("vqa", ws / "dvc-data" / "vqa", sizes=TEMPLATE_SIZES))  # the remote holds one
    templates = {
        t: write_synthetic(t, root / "templates" / t, sizes=TEMPLATE_SIZES) for t in ("vqa", "detect", "extract")
    }
    outside = root / "outside" / "secret.png"
    outside.parent.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(outside)
    deep_base = build_tiny_base(root / "models" / "deep", TinyBaseSpec(layers=3))
    foreign = adapter_of(deep_base, root / "models" / "deep-adapter")
    odd_base = build_tiny_base(root / "models" / "odd", TinyBaseSpec(image_size=72))
    uri = f"sqlite:///{ws}/mlflow.db"

    def make_registry() -> None:
        if not (ws / "mlflow.db").exists():
            registry_with_a_champion(uri, root / "artifacts", foreign)

    return Bench(root, ws, templates, outside, tiny_base, odd_base, foreign, uri, make_registry)


def _files(bench: Bench) -> dict[str, str]:
    """The bench's files; DVC's scratch space and the SQLite store (compared by content) left out."""
    return file_hashes(bench.root, skip=(".dvc/tmp", "mlflow.db"))


def _registry(bench: Bench) -> list[Any] | None:
    """The registry's content; ``None`` while there is no store."""
    return registry_state(bench.tracking_uri) if (bench.ws / "mlflow.db").exists() else None


def _run(command: list[str]) -> int:
    if command[0] == "palitune":
        from palitune.cli import main

        return main(command[1:])
    from training.train import main as train_main

    return train_main(command[1:])


def _points_at(message: str, case: BadInput, attempt: Attempt) -> None:
    assert f"{attempt.root}/{case.at}" in message, message  # the file, line and field, in full
    assert case.says in message, message
    if case.stage == "dataset":
        assert "1 problem(s)" in message, "exactly the one problem built, nothing else"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_refused_where_it_is_and_nothing_changes(
    case: BadInput, bench: Bench, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert case.stage in STAGES
    attempt = case.build(bench, bench.ws / "cases" / case.name)
    monkeypatch.setenv("PALITUNE_HOME", str(bench.ws))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", bench.tracking_uri)
    files, registry = _files(bench), _registry(bench)
    capsys.readouterr()

    code = _run(attempt.command)

    message = capsys.readouterr().err
    assert code in (1, 2), message
    _points_at(message, case, attempt)
    assert _files(bench) == files, "nothing written, moved or versioned"
    assert _registry(bench) == registry, "the registry as it was (no store made where there was none)"
    assert not (bench.ws / "runs").exists()


def test_at_least_thirty_kinds_across_data_configs_and_predictions() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)
    assert {"dataset", "config", "predictions"} <= {case.stage for case in CASES}
