"""The `evaluate` modules load offline from the package and give palitune's own numbers."""

from __future__ import annotations

import ast
import doctest
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import evaluate  # noqa: E402  (the offline switches are read when evaluate is imported)

from data.loc_tokens import encode_boxes  # noqa: E402
from data.masks import encode_rle  # noqa: E402
from data.segment_target import render_segments  # noqa: E402
from evaluation.evaluate_modules import NAMES, module_path  # noqa: E402
from evaluation.score import score_records  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CORE = ("data", "training", "evaluation", "registry", "orchestration", "palitune")

Loader = Callable[[str], Any]


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loader]:
    """``evaluate.load`` of a shipped module, its copy and its data cached in a temporary folder."""
    root = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate.config, "HF_MODULES_CACHE", root / "modules")
        patch.setattr(evaluate.config, "HF_METRICS_CACHE", root / "metrics")
        yield lambda name: evaluate.load(module_path(name), cache_dir=str(root / "metrics"))


def _square(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _answers(rows: list[tuple[str, list[str]]]) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """(predictions, references, the same as score_records' records) of ``(prediction, answers)`` rows."""
    return [p for p, _ in rows], [a for _, a in rows], [{"prediction": p, "answers": a} for p, a in rows]


TEN = ["2", "2", "two", "3", "3", "3", "3", "3", "3", "3"]  # "two" normalises to "2"
TEXT_CASES: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {
    "vqa_accuracy": (  # one answer (exact match, case kept) and ten answers (the official rule, normalised)
        "vqa",
        [("blue", ["blue"]), ("Blue", ["blue"]), ("2", TEN), ("two.", TEN), ("3", TEN), ("yes", ["yes"] * 10)],
    ),
    "anls": (
        "docvqa",
        [("12.5", ["12.50", "12.5 USD"]), (" Total  Due ", ["total due"]), ("x", ["ab"]), ("ACME Inc", ["ACME"])],
    ),
    "relaxed_accuracy": (  # pix2struct strips nothing: " 0" is not "0", " 12" is 12
        "chartqa",
        [(" 0", ["0"]), (" 12", ["12"]), ("45%", ["0.45"]), ("10.6", ["10"]), ("Yes", ["yes"]), ("no ", ["no"])],
    ),
    "ocr": (
        "ocr",
        [("ABCD", ["ABCD"]), (" ABXD ", ["ABCD"]), ("Total", ["TOTAL", "Total"]), ("hello world", ["hello, world"])],
    ),
}


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_text_modules_equal_score_records(load: Loader, name: str) -> None:
    task, rows = TEXT_CASES[name]
    predictions, references, records = _answers(rows)
    got = load(name).compute(predictions=predictions, references=references, return_details=True)
    expected = score_records(task, records)
    assert {k: got[k] for k in expected.metrics} == expected.metrics
    assert list(got) == [*expected.metrics, "scores", "details"]
    assert got["scores"] == expected.scores and got["details"] == expected.details


def test_the_numbers_are_the_official_evaluators(load: Loader) -> None:
    """Values that would change if a module re-implemented a metric its own way."""
    vqa = load("vqa_accuracy").compute(predictions=["blue", "2"], references=[["blue"], TEN], return_details=True)
    assert vqa["scores"] == [1.0, pytest.approx(0.9)]  # one answer: exact match, not the leave-one-out 0
    assert vqa["details"]["vqa_rule_counts"] == {"official_10_answer_leave_one_out": 1, "few_answer_exact_match": 1}
    chart = load("relaxed_accuracy").compute(predictions=[" 0", " 12"], references=[["0"], ["12"]])
    assert chart == {"relaxed_accuracy": 0.5}
    assert load("anls").compute(predictions=["12.5"], references=[["12.50"]]) == {"anls": pytest.approx(0.8)}
    assert load("ocr").compute(predictions=["ABCD", "ABXD"], references=[["ABCD"], ["ABCD"]]) == {
        "ocr_exact_match": 0.5,
        "cer": 0.125,
    }


def test_field_f1_equals_score_records(load: Loader) -> None:
    target = '{"date": "3/4", "total": "12"}'
    predictions = [target, '{"date": "3/4", "total": "13", "tax": "1"}', "not json", '["3/4"]']
    references = [target, target, '{"date": "1/1", "total": "5"}', target]
    got = load("field_f1").compute(predictions=predictions, references=references, return_details=True)
    expected = score_records(
        "extract", [{"prediction": p, "answers": [r]} for p, r in zip(predictions, references, strict=True)]
    )
    assert {k: got[k] for k in expected.metrics} == expected.metrics
    assert got["scores"] == expected.scores and got["json_validity"] == 0.5


def test_caption_equals_score_records(load: Loader) -> None:
    predictions = ["two red circles", "a blue square", "a purple ellipse"]
    references = [["two red circles", "two red circles here"], ["a blue square", "one blue square"], ["three stars"]]
    got = load("caption").compute(predictions=predictions, references=references, return_details=True)
    records = [{"prediction": p, "references": r} for p, r in zip(predictions, references, strict=True)]
    expected = score_records("caption", records)
    assert {k: got[k] for k in expected.metrics} == expected.metrics
    assert got["scores"] == expected.scores and got["tokenizer"] == expected.details["tokenizer"]
    assert ("meteor" in got) == (expected.details["meteor_skipped"] is None)


def test_coco_map_equals_score_records_over_two_images(load: Loader) -> None:
    first: list[list[Any]] = [[10, 20, 50, 60, "circle"], [60, 10, 90, 40, "square"]]
    second: list[list[Any]] = [[5, 5, 100, 70, "square"]]
    predictions = [
        encode_boxes([tuple(b) for b in first], 100, 100),
        encode_boxes([(8, 9, 90, 60, "square"), (0, 0, 20, 20, "star")], 120, 80) + " ; <loc01",  # unknown, cut
    ]
    targets = [(first, 100, 100), (second, 120, 80)]
    references = [
        {"boxes": [b[:4] for b in t], "labels": [b[4] for b in t], "width": w, "height": h} for t, w, h in targets
    ]
    got = load("coco_map").compute(predictions=predictions, references=references, return_details=True)
    records = [
        {"prediction": p, "boxes": t, "width": w, "height": h}
        for p, (t, w, h) in zip(predictions, targets, strict=True)
    ]
    expected = score_records("detect", records)
    assert {k: got[k] for k in expected.metrics} == expected.metrics
    assert got["scores"] == expected.scores and got["details"] == expected.details
    assert 0.3 < got["coco_map"] < 1.0 and got["details"]["unknown_labels"] == 1


def _disc(cx: float, cy: float, r: float, width: int, height: int) -> np.ndarray:
    """A filled disc, a mask the codec reconstructs only approximately (unlike a box-filling square)."""
    ys, xs = np.mgrid[:height, :width]
    return (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 <= r * r


def _mask_object(mask: np.ndarray, box: list[float], label: str) -> dict[str, Any]:
    """An object as a segment dataset stores it: box in pixels, label, compressed RLE."""
    return {"box": box, "label": label, "mask": encode_rle(mask)}


def test_segmentation_equals_score_records_over_four_images(load: Loader) -> None:
    """Real RLE masks, predictions rendered by the real codec, one output cut short (invalid)."""
    disc = _mask_object(_disc(30, 28, 14, 64, 48), [16.0, 14.0, 44.0, 42.0], "disc")
    square = _mask_object(_square(4, 4, 20, 20, 64, 48), [4.0, 4.0, 20.0, 20.0], "square")
    wide = _mask_object(_disc(50, 30, 20, 80, 60), [30.0, 10.0, 70.0, 50.0], "disc")
    shifted = _mask_object(_disc(55, 34, 18, 80, 60), [37.0, 16.0, 73.0, 52.0], "disc")
    cut = render_segments([disc], 64, 48).split("<seg")[0:9]  # the boxes and 8 of 16 codes
    targets = [([disc, square], 64, 48), ([wide], 80, 60), ([disc], 64, 48), ([wide], 80, 60)]
    predictions = [
        render_segments([disc, square], 64, 48),  # both objects, as the codec renders them
        render_segments([shifted], 80, 60),  # the right label, a displaced mask
        "<seg".join(cut),  # invalid: too few codes
        render_segments([{**shifted, "label": "star"}], 80, 60),  # a label in no target
    ]
    references = [{"masks": m, "width": w, "height": h} for m, w, h in targets]
    got = load("segmentation").compute(predictions=predictions, references=references, return_details=True)
    records = [{"prediction": p, **r} for p, r in zip(predictions, references, strict=True)]
    expected = score_records("segment", records)
    assert {k: got[k] for k in expected.metrics} == expected.metrics
    assert list(got) == [*expected.metrics, "scores", "details"]
    assert got["scores"] == expected.scores and got["details"] == expected.details
    assert got["invalid"] == 1.0 and got["scores"][2] == 0.0 and got["details"]["unknown_labels"] == 1
    assert got["scores"][0] > 0.8 and 0.2 < got["scores"][1] < 0.8, "the codec decoded real masks"
    assert 0.0 < got["segm_map"] < 1.0 and got["box_acc50"] == pytest.approx((1.0 + 1.0 + 0.0 + 1.0) / 4)


def test_what_cannot_be_scored_raises(load: Loader) -> None:
    with pytest.raises(ValueError, match="answers: expected a non-empty"):
        load("anls").compute(predictions=["a", "b"], references=[["a"], []])
    with pytest.raises(ValueError, match="reference 1: 2 boxes but 1 labels"):
        load("coco_map").compute(
            predictions=[""],
            references=[{"boxes": [[0, 0, 1, 1], [1, 1, 2, 2]], "labels": ["a"], "width": 4, "height": 4}],
        )
    with pytest.raises(ValueError, match="at least two images"):
        load("caption").compute(predictions=["a dog"], references=[["a dog"]])
    with pytest.raises(ValueError, match=r"masks\[0\]\.mask: RLE size \[8, 8\] is not the image's"):
        load("segmentation").compute(
            predictions=["no objects"],
            references=[
                {"masks": [_mask_object(_square(0, 0, 4, 4, 8, 8), [0, 0, 4, 4], "a")], "width": 9, "height": 9}
            ],
        )


@pytest.mark.parametrize("name", NAMES)
def test_each_module_is_documented(load: Loader, name: str) -> None:
    folder = Path(module_path(name))
    assert (folder / f"{name}.py").is_file()
    card = (folder / "README.md").read_text(encoding="utf-8")
    for section in ("## Metric Description", "### Inputs", "### Output Values", "### Examples", "## Citation"):
        assert section in card, f"{name}/README.md lacks {section}"
    module = load(name)
    assert module.description and module.citation and module.inputs_description and module.features


@pytest.mark.parametrize("name", NAMES)
def test_the_metric_card_examples_hold(load: Loader, name: str) -> None:
    card = (Path(module_path(name)) / "README.md").read_text(encoding="utf-8")
    examples = [block for block in re.findall(r"```python\n(.*?)```", card, re.S) if ">>>" in block]
    assert examples, f"{name}/README.md has no example with its output"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for block in examples:
        runner.run(doctest.DocTestParser().get_doctest(block, {"metric": load(name)}, name, None, 0))
    assert runner.summarize(verbose=False).failed == 0


def test_an_unknown_module_is_refused() -> None:
    with pytest.raises(KeyError, match="expected one of vqa_accuracy"):
        module_path("exact_match")


def _imports_evaluate(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(n == "evaluate" or n.startswith("evaluate.") for n in names):
            return True
    return False


def test_no_core_module_imports_evaluate() -> None:
    modules = REPO / "evaluation" / "evaluate_modules"
    core = [p for d in CORE for p in sorted((REPO / d).rglob("*.py")) if modules not in p.parents]
    assert len(core) > 50, "the packages were found"
    assert not [str(p.relative_to(REPO)) for p in core if _imports_evaluate(p)]
    assert _imports_evaluate(modules / "base.py"), "the check sees an import (every module's class is base's)"


def test_importing_the_helper_does_not_import_evaluate() -> None:
    code = "import sys, evaluation.evaluate_modules; print('evaluate' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert run.stdout.strip() == "False"
