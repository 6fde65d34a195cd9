"""The pictures of a report: an example grid, and box overlays for detection."""

from pathlib import Path

from PIL import Image

from data.schema import read_split
from data.synthetic import SplitSizes, write_synthetic
from evaluation.pictures import BAD, GOOD, TILE, write_pictures
from evaluation.report import EvaluationReport, ScoredPrediction


def _report(task: str, dataset: Path, predictions: list[str], scores: list[float]) -> EvaluationReport:
    examples = read_split(dataset, "test")
    scored = [
        ScoredPrediction(e.id, e.prefix, p, e.answers or [e.suffix], s)
        for e, p, s in zip(examples, predictions, scores, strict=False)
    ]
    return EvaluationReport(task, "test", "m", None, {f"{task}/test/x": 0.5}, scored)


def test_grid_frames_right_and_wrong_answers(tmp_path: Path) -> None:
    dataset = write_synthetic("vqa", tmp_path / "vqa", sizes=SplitSizes(1, 1, 5))
    files = write_pictures(_report("vqa", dataset, ["a"] * 5, [1, 0, 1, 0, 1]), dataset, tmp_path / "out")
    assert [f.name for f in files] == ["examples.png"]
    with Image.open(files[0]) as grid:
        assert grid.width == 4 * TILE
        assert grid.getpixel((1, 1)) == GOOD and grid.getpixel((TILE + 1, 1)) == BAD


def test_detection_overlays_draw_target_and_predicted_boxes(tmp_path: Path) -> None:
    dataset = write_synthetic("detect", tmp_path / "det", sizes=SplitSizes(1, 1, 2))
    examples = read_split(dataset, "test")
    swapped = [examples[1].suffix, examples[0].suffix]  # boxes of the other image: both colours show
    files = write_pictures(_report("detect", dataset, swapped, [0, 0]), dataset, tmp_path / "o")
    assert [f.name for f in files] == ["examples.png", "detections.png"]
    with Image.open(files[1]) as overlay:
        colours = {c for _, c in overlay.getcolors(maxcolors=1 << 16)}
    assert GOOD in colours and BAD in colours
