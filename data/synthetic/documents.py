"""Printed text: tiny receipts (document VQA, field extraction) and single words (OCR)."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from data.synthetic.common import (
    Sample,
    SyntheticGenerator,
    cap_height,
    dark_ink,
    draw_text,
    fit_font,
    light_background,
    line_pitch,
    text_box,
)
from data.tasks import extract_prefix, get_task

OCR_ALPHABET = "ABCDEFHKLMNPRSTUVXYZ"  # capitals that stay distinct when small: no I/J, O/Q, G, W
RECEIPT_TEMPLATE = ("DATE 8/8", "TAX 8", "TOTAL 88")  # the widest receipt: every receipt uses its font
RECEIPT_QUESTIONS = {"date": "what is the date?", "tax": "what is the tax?", "total": "what is the total?"}
EXTRACT_FIELDS = ("date", "total")


def draw_receipt(rng: random.Random, size: int) -> tuple[Image.Image, dict[str, str]]:
    """A receipt of two or three lines ("DATE 3/4", maybe "TAX 2", "TOTAL 12") and its values.

    Returns:
        The image and the printed values by field name (``date``, ``total``, maybe ``tax``).
    """
    values = {"date": f"{rng.randint(1, 9)}/{rng.randint(1, 9)}"}
    if rng.random() < 0.5:
        values["tax"] = str(rng.randint(1, 9))
    values["total"] = str(rng.randint(1, 99))
    lines = [f"{name.upper()} {value}" for name, value in values.items()]
    margin = max(1, size // 32)
    face = fit_font(RECEIPT_TEMPLATE, size - 2 * margin, size - 2 * margin, largest=size // 3)
    pitch = line_pitch(face)
    block_width = max(text_box(face, line)[2] for line in lines)
    block_height = pitch * (len(lines) - 1) + cap_height(face)
    # A little jitter, not the whole free space: at 64 px a digit is ~5 px wide, and the tiny
    # model reads a value far more easily where the line is expected to be.
    x = margin + rng.randint(0, min(2, max(0, size - 2 * margin - block_width)))
    y = margin + rng.randint(0, min(2, max(0, size - 2 * margin - block_height)))
    image = light_background(rng, size)
    draw = ImageDraw.Draw(image)
    ink = dark_ink(rng)
    for i, line in enumerate(lines):
        draw_text(draw, (x, y + cap_height(face) + pitch * i), line, face, ink)
    return image, values


def draw_docvqa(rng: random.Random, size: int) -> Sample:
    """A receipt and one question about a printed value: "what is the total?" -> "12"."""
    image, values = draw_receipt(rng, size)
    field = rng.choice(list(values))
    task = get_task("docvqa")
    answer = values[field]
    return Sample(image, task.prefix(question=RECEIPT_QUESTIONS[field]), task.render_suffix(answer), answers=[answer])


def draw_extract(rng: random.Random, size: int) -> Sample:
    """A receipt read into fields: ``{"date": "3/4", "total": "12"}`` (a tax line is ignored)."""
    image, values = draw_receipt(rng, size)
    fields = {name: values[name] for name in EXTRACT_FIELDS}
    return Sample(image, extract_prefix(EXTRACT_FIELDS), get_task("extract").render_suffix(fields), fields=fields)


def draw_ocr(rng: random.Random, size: int) -> Sample:
    """One word of three or four capitals, as large as fits; the target is the word."""
    word = "".join(rng.choice(OCR_ALPHABET) for _ in range(rng.choice((3, 4))))
    margin = max(1, size // 16)
    face = fit_font([word], size - 2 * margin, size // 2, largest=size // 2)
    left, top, right, bottom = text_box(face, word)
    x = margin - left + rng.randint(0, max(0, size - 2 * margin - (right - left)))
    y = margin - top + rng.randint(0, max(0, size - 2 * margin - (bottom - top)))
    image = light_background(rng, size)
    draw_text(ImageDraw.Draw(image), (x, y), word, face, dark_ink(rng))
    task = get_task("ocr")
    return Sample(image, task.prefix(), task.render_suffix(word), answers=[word])


RECEIPT_DOCVQA = SyntheticGenerator("receipt-docvqa", "docvqa", draw_docvqa)
RECEIPT_EXTRACT = SyntheticGenerator("receipt-extract", "extract", draw_extract)
WORD_OCR = SyntheticGenerator("word-ocr", "ocr", draw_ocr)
