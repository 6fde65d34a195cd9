"""The learnability benchmark scores with the task's own metrics, and box recall counts boxes."""

from pathlib import Path

import pytest

from benchmarks.learnability import BOX_RECALL, score, score_outputs
from data.schema import read_split
from data.synthetic import SplitSizes, write_synthetic
from evaluation.score import read_predictions, score_records

DETECT_METRICS = ["coco_map", "ap50", "ap75", "ar", BOX_RECALL]


@pytest.fixture(scope="module")
def small_detect(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic("detect", tmp_path_factory.mktemp("data") / "detect", sizes=SplitSizes(1, 1, 8))


def test_perfect_detections_score_one_on_every_metric(small_detect: Path) -> None:
    examples = read_split(small_detect, "test")
    metrics = score_outputs("detect", small_detect, examples, [e.suffix for e in examples])
    assert list(metrics) == DETECT_METRICS, "the primary metric first, box recall last"
    assert metrics == pytest.approx(dict.fromkeys(DETECT_METRICS, 1.0))


def test_box_recall_is_the_share_of_target_boxes_found(small_detect: Path) -> None:
    examples = read_split(small_detect, "test")
    outputs = [e.suffix for e in examples]
    several = next(i for i, e in enumerate(examples) if len(e.boxes) >= 2)
    outputs[several] = outputs[several].rsplit(" ; ", 1)[0]  # its last box is missed
    unparsable = next(i for i in range(len(examples)) if i != several)
    outputs[unparsable] = "no boxes here"  # every box of it is missed
    total = sum(len(e.boxes) for e in examples)
    found = total - 1 - len(examples[unparsable].boxes)
    metrics = score_outputs("detect", small_detect, examples, outputs)
    assert metrics[BOX_RECALL] == pytest.approx(found / total)
    assert 0.0 < metrics["coco_map"] < 1.0


def test_outputs_must_match_examples_one_to_one(small_detect: Path) -> None:
    examples = read_split(small_detect, "test")
    with pytest.raises(ValueError, match="one each"):
        score_outputs("detect", small_detect, examples, [examples[0].suffix])


def test_untrained_base_scores_in_range_with_the_task_metric(tiny_base: Path, small_vqa: Path, tmp_path: Path) -> None:
    written = tmp_path / "predictions" / "vqa.jsonl"
    metrics = score("vqa", small_vqa, str(tiny_base), None, written)
    assert list(metrics) == ["vqa_accuracy"]
    assert 0.0 <= metrics["vqa_accuracy"] <= 1.0
    records = read_predictions(written)
    assert len(records) == len(read_split(small_vqa, "test"))
    assert score_records("vqa", records, source=written).metrics == metrics, "the file rescores the same"


def test_untrained_detector_reports_box_recall_in_range(tiny_base: Path, small_detect: Path) -> None:
    metrics = score("detect", small_detect, str(tiny_base), None)
    assert list(metrics) == DETECT_METRICS
    assert all(0.0 <= value <= 1.0 for value in metrics.values())
