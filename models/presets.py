"""Base model presets: a short name for each published PaliGemma checkpoint and the facts a
run needs before loading it (image size and the number of image tokens in the prompt).

``base_model`` in a run config takes a preset name, a hub id or a local folder; a preset
resolves to its hub id, except ``tiny``, which is built locally (``models.tiny_base``).
Image tokens are (image size / 14)^2 for SigLIP So400m/14: 256 at 224 px, 1024 at 448 px,
4096 at 896 px.
"""

from __future__ import annotations

from dataclasses import dataclass

PATCH = 14  # SigLIP So400m/14


@dataclass(frozen=True)
class BasePreset:
    name: str
    ref: str  # hub id ("tiny": built locally)
    image_size: int
    image_tokens: int
    params_b: float  # parameters, billions (rough), to size the run


def _published() -> dict[str, BasePreset]:
    presets = {}
    for family, sizes, hub in (
        ("paligemma", {"3b": 2.9}, "google/paligemma-{size}-pt-{px}"),
        ("paligemma2", {"3b": 3.0, "10b": 9.7, "28b": 27.7}, "google/paligemma2-{size}-pt-{px}"),
    ):
        for size, params in sizes.items():
            for px in (224, 448, 896):
                name = f"{family}-{size}-pt-{px}"
                presets[name] = BasePreset(name, hub.format(size=size, px=px), px, (px // PATCH) ** 2, params)
    return presets


TINY = BasePreset("tiny", "tiny", 64, 16, 0.0003)
PRESETS: dict[str, BasePreset] = {"tiny": TINY, **_published()}


def preset_for(ref: str) -> BasePreset | None:
    """The preset named ``ref``, or whose hub id is ``ref``; ``None`` for anything else."""
    if ref in PRESETS:
        return PRESETS[ref]
    return next((p for p in PRESETS.values() if p.ref == ref), None)
