"""Turn examples into PaliGemma batches: image tokens, prefix, suffix-only labels.

The processor does the PaliGemma-specific work: it prepends the image tokens and ``<bos>``,
ends the prefix with ``\\n``, appends ``<eos>`` to the suffix (what teaches the model to
stop), sets ``labels`` to -100 outside the suffix and ``token_type_ids`` to 1 on it (the
prefix-LM attention mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image
from transformers import PaliGemmaProcessor

from data.schema import Example

IMAGE_TOKEN = "<image>"


def load_image(root: Path, example: Example) -> Image.Image:
    with Image.open(Path(root) / example.image) as image:
        return image.convert("RGB")


def prompt(example: Example) -> str:
    return IMAGE_TOKEN + example.prefix


class TrainCollator:
    """Collate examples of one dataset folder into a training batch."""

    def __init__(self, processor: PaliGemmaProcessor, root: Path):
        self.processor, self.root = processor, Path(root)

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        return self.processor(
            text=[prompt(e) for e in examples],
            images=[load_image(self.root, e) for e in examples],
            suffix=[e.suffix for e in examples],
            return_tensors="pt",
            padding="longest",
        )


def generation_batch(processor: PaliGemmaProcessor, root: Path, examples: list[Example]) -> dict[str, Any]:
    """A prompt-only batch for generation (left-padded, so new tokens line up)."""
    return processor(
        text=[prompt(e) for e in examples],
        images=[load_image(root, e) for e in examples],
        return_tensors="pt",
        padding="longest",
    )
