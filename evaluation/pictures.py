"""Pictures of an evaluation that a person would rather look at than read.

- ``examples.png``: a grid of test images, each with its prompt, the model's answer and the
  target, framed green when the example scored 0.5 or more and red otherwise.
- ``detections.png`` (tasks whose target is boxes, e.g. detect): images with the target
  boxes in green and the predicted boxes in red, labels written beside them.

Written next to ``report.json``, so they travel with the report into MLflow.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from data.schema import Example, read_split
from data.tasks import ImageSize, OutputParseError, Task, get_task
from evaluation.report import EvaluationReport, ScoredPrediction

TILE = 192  # pixels per image in the pictures
CAPTION_LINES = 3
GOOD, BAD, TEXT = (34, 139, 34), (200, 30, 30), (20, 20, 20)


def write_pictures(report: EvaluationReport, dataset_dir: Path, folder: Path, *, count: int = 16) -> list[Path]:
    """Draw the first ``count`` examples of ``report`` into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {e.id: e for e in read_split(dataset_dir, report.split)}
    shown = [(by_id[p.id], p) for p in report.predictions[:count] if p.id in by_id]
    if not shown:
        return []
    written = [_grid(dataset_dir, shown, folder / "examples.png")]
    task = get_task(report.task)
    if task.target == "boxes":
        written.append(_detections(task, dataset_dir, shown, folder / "detections.png"))
    return written


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _tile(dataset_dir: Path, example: Example) -> Image.Image:
    with Image.open(Path(dataset_dir) / example.image) as image:
        return image.convert("RGB").resize((TILE, TILE), Image.Resampling.NEAREST)


def _sheet(count: int, caption_height: int) -> tuple[Image.Image, int]:
    columns = min(4, count)
    rows = -(-count // columns)
    return Image.new("RGB", (columns * TILE, rows * (TILE + caption_height)), "white"), columns


def _grid(dataset_dir: Path, shown: list[tuple[Example, ScoredPrediction]], path: Path) -> Path:
    line = 12
    sheet, columns = _sheet(len(shown), CAPTION_LINES * line + 4)
    draw, font = ImageDraw.Draw(sheet), _font()
    for i, (example, prediction) in enumerate(shown):
        x, y = (i % columns) * TILE, (i // columns) * (TILE + CAPTION_LINES * line + 4)
        sheet.paste(_tile(dataset_dir, example), (x, y))
        colour = GOOD if prediction.score >= 0.5 else BAD
        draw.rectangle([x, y, x + TILE - 1, y + TILE - 1], outline=colour, width=3)
        target = " | ".join(prediction.answers[:2])
        texts = [example.prefix, f"got: {prediction.prediction}", f"want: {target}  ({prediction.score:.2f})"]
        for j, text in enumerate(texts):
            draw.text((x + 3, y + TILE + 2 + j * line), _fit(draw, text, font), fill=colour if j else TEXT, font=font)
    sheet.save(path)
    return path


def _detections(task: Task, dataset_dir: Path, shown: list[tuple[Example, ScoredPrediction]], path: Path) -> Path:
    sheet, columns = _sheet(len(shown), 0)
    for i, (example, prediction) in enumerate(shown):
        with Image.open(Path(dataset_dir) / example.image) as image:
            size = ImageSize(*image.size)
        tile = _tile(dataset_dir, example)
        draw, font = ImageDraw.Draw(tile), _font()
        scale_x, scale_y = TILE / size.width, TILE / size.height
        try:
            predicted = task.parse_output(prediction.prediction, size)
        except OutputParseError:
            predicted = []
        for boxes, colour in ((example.boxes, GOOD), (predicted, BAD)):
            for x0, y0, x1, y1, label in boxes:
                box = [x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y]
                draw.rectangle(box, outline=colour, width=2)
                draw.text((box[0] + 2, box[1] + 1), str(label), fill=colour, font=font)
        sheet.paste(tile, ((i % columns) * TILE, (i // columns) * TILE))
    sheet.save(path)
    return path


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` cut with an ellipsis to the width of a tile."""
    if draw.textlength(text, font=font) <= TILE - 6:
        return text
    while text and draw.textlength(text + "…", font=font) > TILE - 6:
        text = text[:-1]
    return text + "…"
