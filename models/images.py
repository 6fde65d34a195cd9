"""Open images the ways palitune receives them: a dataset file, a path, raw bytes, base64."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from PIL import Image


def open_image(root: Path, image: str) -> Image.Image:
    """The image at ``image`` (relative to ``root``) as RGB."""
    with Image.open(Path(root) / image) as opened:
        return opened.convert("RGB")


def decode_image(value: Any) -> Image.Image:
    """An image from a file path, raw bytes, or base64 text (a ``data:`` URI prefix is allowed).

    Raises:
        ValueError: the value is none of those, or not an image.
    """
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    data: bytes
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str) and len(value) < 4096 and Path(value).is_file():
        data = Path(value).read_bytes()
    elif isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image: expected a file path, bytes or base64 text") from None
    else:
        raise ValueError(f"image: expected a file path, bytes or base64 text, got {type(value).__name__}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except OSError as err:
        raise ValueError(f"image: not a readable image ({err})") from None
