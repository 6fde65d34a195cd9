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


def _blend(raw: tuple[int, ...], colour: tuple[int, int, int]) -> tuple[float, ...]:
    from evaluation.pictures import MASK_ALPHA

    a = MASK_ALPHA / 255
    return tuple(r * (1 - a) + c * a for r, c in zip(raw[:3], colour, strict=True))


def test_mask_overlays_lay_target_masks_in_green_and_predicted_ones_in_red(tmp_path: Path) -> None:
    import json

    import numpy as np

    from data.masks import decode_mask
    from data.segment_target import current_codec, parse_segments
    from evaluation.report import REPORT_FILE

    dataset = write_synthetic("segment", tmp_path / "seg", sizes=SplitSizes(1, 1, 2), image_size=64)
    examples = read_split(dataset, "test")
    report = _report("segment", dataset, [examples[1].suffix, "no objects"], [0, 0])  # swapped, then invalid
    files = write_pictures(report, dataset, tmp_path / "out")
    assert [f.name for f in files] == ["examples.png", "masks.png"]
    report.write(tmp_path / "out")
    assert json.loads((tmp_path / "out" / REPORT_FILE).read_text())["pictures"] == ["examples.png", "masks.png"]

    def target(example) -> np.ndarray:
        return np.logical_or.reduce([decode_mask(o["mask"], 64, 64) for o in example.masks])

    objects, _ = parse_segments(examples[1].suffix, 64, 64)
    codec = current_codec()
    predicted = np.logical_or.reduce([codec.codes_to_mask(o.codes, o[:4], (64, 64)) for o in objects])
    scale = TILE // 64
    with Image.open(files[1]) as sheet, Image.open(dataset / examples[0].image) as first:
        with Image.open(dataset / examples[1].image) as second:
            for column, image, inside, colour in (
                (0, first, target(examples[0]) & ~predicted, GOOD),
                (0, first, predicted & ~target(examples[0]), BAD),
                (1, second, target(examples[1]), GOOD),
            ):
                ys, xs = np.nonzero(inside)
                assert ys.size, "the case has pixels to look at"
                y, x = int(ys[ys.size // 2]), int(xs[ys.size // 2])
                shown = sheet.getpixel((column * TILE + x * scale + scale // 2, y * scale + scale // 2))
                expected = _blend(image.convert("RGB").getpixel((x, y)), colour)
                assert all(abs(s - e) <= 2 for s, e in zip(shown, expected, strict=True)), (shown, expected)
            outside = ~target(examples[1])
            ys, xs = np.nonzero(outside)
            y, x = int(ys[0]), int(xs[0])
            raw = second.convert("RGB").getpixel((x, y))
            assert sheet.getpixel((TILE + x * scale + 1, y * scale + 1)) in (raw, GOOD), "no mask outside the target"
