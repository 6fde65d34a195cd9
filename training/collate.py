"""Turn examples into PaliGemma batches: image tokens, prefix, suffix-only labels.

The processor does the PaliGemma-specific work: it prepends the image tokens and ``<bos>``,
ends the prefix with ``\\n``, appends ``<eos>`` to the suffix (what teaches the model to
stop), sets ``labels`` to -100 outside the suffix and ``token_type_ids`` to 1 on it (the
prefix-LM attention mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PaliGemmaProcessor

from data.schema import Example
from models.generation import IMAGE_TOKEN
from models.images import open_image

if TYPE_CHECKING:
    from training.feature_cache import ImageFeatures
    from training.preprocess_cache import PreprocessedSplit


def prompt(example: Example) -> str:
    return IMAGE_TOKEN + example.prefix


def text_batch(processor: PaliGemmaProcessor, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """The text half of ``processor(text=..., images=..., suffix=...)``, without the images.

    The same token layout the processor builds (a test holds them equal): the image tokens,
    ``<bos>``, the prefix and ``\\n`` as the first segment, the suffix and ``<eos>`` as the
    second, ``token_type_ids`` 1 on the second, labels only there.
    """
    tokenizer = processor.tokenizer
    image_tokens = IMAGE_TOKEN * processor.image_seq_length
    batch = tokenizer(
        [f"{image_tokens}{tokenizer.bos_token}{e.prefix}\n" for e in examples],
        text_pair=[e.suffix + tokenizer.eos_token for e in examples],
        return_token_type_ids=True,
        padding="longest",
        return_tensors="pt",
    )
    labels = batch["input_ids"].masked_fill(batch["token_type_ids"] == 0, -100)
    return {**batch, "labels": labels}


class TrainCollator:
    """Collate examples of one dataset folder into a training batch.

    With ``features`` (the cached outputs of a frozen vision tower, see
    ``training.feature_cache``), no image is opened: ``pixel_values`` carries each image's
    cached features instead. With ``preprocessed`` (see ``training.preprocess_cache``), the
    tokenizer does not run either: token ids (and, without ``features``, pixel values) are
    read from the stored split. Every path builds the same tensors.
    """

    def __init__(
        self,
        processor: PaliGemmaProcessor,
        root: Path,
        features: ImageFeatures | None = None,
        preprocessed: PreprocessedSplit | None = None,
    ):
        self.processor, self.root, self.features, self.preprocessed = processor, Path(root), features, preprocessed

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        images = [e.image for e in examples]
        if self.preprocessed is not None:
            pixels = self.features.lookup(images) if self.features else self.preprocessed.pixel_values(images)
            return {**self.preprocessed.text_batch(examples), "pixel_values": pixels}
        if self.features is not None:
            return {**text_batch(self.processor, examples), "pixel_values": self.features.lookup(images)}
        return self.processor(
            text=[prompt(e) for e in examples],
            images=[open_image(self.root, e.image) for e in examples],
            suffix=[e.suffix for e in examples],
            return_tensors="pt",
            padding="longest",
        )
