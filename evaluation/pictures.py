"""Pictures of an evaluation that a person would rather look at than read.

- ``examples.png``: a grid of test images, each with its prompt, the model's answer and the
  target, framed green when the example scored 0.5 or more and red otherwise.
- ``detections.png`` (tasks whose target is boxes, e.g. detect): images with the target
  boxes in green and the predicted boxes in red, labels written beside them.
- ``masks.png`` (tasks whose target is masks, e.g. segment): images with the target masks
  laid over them in translucent green and the predicted masks (decoded by the mask codec
  and pasted into their boxes, as scoring does) in translucent red, where both overlap
  the two mix; boxes outlined and labelled in the same colours.

Written next to ``report.json`` (which lists them, ``evaluation.report.PICTURE_FILES``), so
they travel with the report into MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from data.schema import Example, read_split
from data.tasks import ImageSize, OutputParseError, Task, get_task
from evaluation.report import DETECTIONS_PICTURE, EXAMPLES_PICTURE, MASKS_PICTURE, EvaluationReport, ScoredPrediction

TILE = 192  # pixels per image in the pictures
CAPTION_LINES = 3
GOOD, BAD, TEXT = (34, 139, 34), (200, 30, 30), (20, 20, 20)
MASK_ALPHA = 110  # of 255: the image stays visible under a mask


def write_pictures(report: EvaluationReport, dataset_dir: Path, folder: Path, *, count: int = 16) -> list[Path]:
    """Draw the first ``count`` examples of ``report`` into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {e.id: e for e in read_split(dataset_dir, report.split)}
    shown = [(by_id[p.id], p) for p in report.predictions[:count] if p.id in by_id]
    if not shown:
        return []
    written = [_grid(dataset_dir, shown, folder / EXAMPLES_PICTURE)]
    task = get_task(report.task)
    if task.target == "boxes":
        written.append(_detections(task, dataset_dir, shown, folder / DETECTIONS_PICTURE))
    elif task.target == "masks":
        written.append(_masks(dataset_dir, shown, folder / MASKS_PICTURE))
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


def _masks(dataset_dir: Path, shown: list[tuple[Example, ScoredPrediction]], path: Path) -> Path:
    """Target masks (green) and predicted masks (red) laid over each image, boxes labelled."""
    from data.masks import MaskFormatError, decode_mask
    from data.segment_target import current_codec, parse_segments

    codec = current_codec()
    sheet, columns = _sheet(len(shown), 0)
    for i, (example, prediction) in enumerate(shown):
        with Image.open(Path(dataset_dir) / example.image) as image:
            width, height = image.size
        targets = []
        for obj in example.masks:
            try:
                targets.append((decode_mask(obj["mask"], height, width), obj["box"], obj["label"]))
            except (MaskFormatError, KeyError, TypeError):
                continue  # a picture shows what it can; validation reports bad masks
        objects, _ = parse_segments(prediction.prediction, width, height)
        predicted = [
            (codec.codes_to_mask(o.codes, box, (width, height)), box, o.label)
            for o in objects
            if o.x0 < o.x1 and o.y0 < o.y1
            for box in [(o.x0, o.y0, o.x1, o.y1)]
        ]
        tile = _tile(dataset_dir, example).convert("RGBA")
        for drawn, colour in ((targets, GOOD), (predicted, BAD)):
            for mask, _, _ in drawn:
                tile = Image.alpha_composite(tile, _mask_layer(mask, colour))
        draw, font = ImageDraw.Draw(tile), _font()
        scale_x, scale_y = TILE / width, TILE / height
        for drawn, colour in ((targets, GOOD), (predicted, BAD)):
            for _, (x0, y0, x1, y1), label in drawn:
                box = [x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y]
                draw.rectangle(box, outline=colour, width=1)
                draw.text((box[0] + 2, box[1] + 1), str(label), fill=colour, font=font)
        sheet.paste(tile.convert("RGB"), ((i % columns) * TILE, (i // columns) * TILE))
    sheet.save(path)
    return path


def _mask_layer(mask: Any, colour: tuple[int, int, int]) -> Image.Image:
    """A ``TILE x TILE`` RGBA layer: ``colour`` at ``MASK_ALPHA`` inside ``mask``, clear outside."""
    alpha = Image.fromarray(mask.astype("uint8") * MASK_ALPHA).resize((TILE, TILE), Image.Resampling.NEAREST)
    layer = Image.new("RGBA", (TILE, TILE), (*colour, 0))
    layer.putalpha(alpha)
    return layer


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` cut with an ellipsis to the width of a tile."""
    if draw.textlength(text, font=font) <= TILE - 6:
        return text
    while text and draw.textlength(text + "…", font=font) > TILE - 6:
        text = text[:-1]
    return text + "…"
