"""The ``segment`` task's target: objects with a box, a label and a mask, to and from text.

An example's ``masks`` field lists its objects as
``{"box": [x0, y0, x1, y1], "label": "cat", "mask": COCO RLE of the whole image}``, box in
pixels (the annotation's box: the codec describes the mask inside it, as big_vision's
refcoco transfer crops to the annotation box, not to the tight box of the mask). The suffix
is PaliGemma's segmentation text (``data.seg_tokens``): per object four location tokens, the
16 codes the mask codec gives the mask inside the box, then the label.

The codec is the one ``data.mask_codec.load_codec`` selects (``PALITUNE_MASK_CODEC`` or the
embedded one); a dataset records it in its manifest (``mask_codec``) and is refused with
another one (``require_dataset_codec``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.masks import decode_mask

if TYPE_CHECKING:
    from data.mask_codec.codec import MaskCodec
    from data.seg_tokens import SegmentedObject

MANIFEST_KEY = "mask_codec"
OBJECT_SHAPE = '[{"box": [x0, y0, x1, y1], "label": "...", "mask": COCO RLE}, ...] in pixels'


@lru_cache(maxsize=4)
def _codec(selected: str) -> MaskCodec:
    from data.mask_codec.codec import load_codec

    return load_codec(selected or None)


def current_codec() -> MaskCodec:
    """The codec in force: ``$PALITUNE_MASK_CODEC`` when set, else the embedded one (loaded once)."""
    import os

    from data.mask_codec.codec import ENV_VAR

    return _codec(os.environ.get(ENV_VAR, "").strip())


def _object(value: Any, index: int, width: int, height: int) -> tuple[list[float], str, Any]:
    """One object's box, label and decoded mask; ``ValueError`` naming ``masks[index]`` otherwise."""
    where = f"masks[{index}]"
    if not isinstance(value, Mapping) or set(value) != {"box", "label", "mask"}:
        raise ValueError(f'{where}: expected {{"box", "label", "mask"}}, got {json.dumps(value)[:80]}')
    box, label = value["box"], value["label"]
    if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
        raise ValueError(f"{where}.box: expected [x0, y0, x1, y1] in pixels, got {box!r}")
    if not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(f"{where}.box: inverted or empty box {box}: need x0 < x1 and y0 < y1")
    if not (0 <= box[0] and 0 <= box[1] and box[2] <= width and box[3] <= height):
        raise ValueError(f"{where}.box: {box} outside the {width}x{height} image")
    if not isinstance(label, str) or not label.strip() or ";" in label:
        raise ValueError(f"{where}.label: expected a non-empty label without ';', got {label!r}")
    try:
        mask = decode_mask(value["mask"], height, width)
    except ValueError as err:
        raise ValueError(f"{where}.mask: {err}") from None
    if not mask.any():
        raise ValueError(f"{where}.mask: the mask is empty (no pixel inside)")
    return [float(v) for v in box], label.strip(), mask


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def render_segments(target: Any, width: int, height: int, codec: MaskCodec | None = None) -> str:
    """``masks`` objects -> PaliGemma segmentation text, each mask encoded by the codec.

    Raises:
        ValueError: an object that is not ``{"box", "label", "mask"}``, a box outside the
            image or inverted, a mask that is not a COCO RLE (or polygons) of the image, or
            an empty one; the message names ``masks[i]`` and the field.
    """
    from data.seg_tokens import encode_objects

    if not isinstance(target, list) or not target:
        raise ValueError(f"expected a non-empty list of objects, {OBJECT_SHAPE}")
    codec = codec or current_codec()
    objects = []
    for index, value in enumerate(target):
        box, label, mask = _object(value, index, width, height)
        objects.append([*box, label, codec.mask_to_codes(mask, box)])
    return encode_objects(objects, width, height)


def parse_segments(
    text: str, width: int, height: int, labels: Sequence[str] | None = None
) -> tuple[list[SegmentedObject], int]:
    """Generated segmentation text -> (objects in pixels with their codes, how many were dropped)."""
    from data.seg_tokens import decode_objects

    return decode_objects(text, width, height, labels)


def codec_record() -> dict[str, str]:
    """What a manifest records of the codec in force: its name and the SHA-256 of its weights."""
    return current_codec().identity.as_dict()


def require_dataset_codec(manifest_path: Path) -> MaskCodec:
    """The codec in force, once it is the one that encoded the dataset of ``manifest_path``.

    Raises:
        MaskCodecError: the manifest records no codec, or another one (how to fix it is said).
    """
    from data.mask_codec.checkpoint import MaskCodecError
    from data.mask_codec.codec import require_codec

    codec = current_codec()
    recorded = json.loads(Path(manifest_path).read_text()).get(MANIFEST_KEY)
    if not isinstance(recorded, Mapping):
        raise MaskCodecError(
            f"{manifest_path}: records no {MANIFEST_KEY!r}: its <seg> codes cannot be decoded with certainty; "
            "re-render or re-ingest the dataset"
        )
    require_codec(recorded, codec, what=f"the dataset of {manifest_path}")
    return codec
