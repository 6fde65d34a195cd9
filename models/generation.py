"""Greedy generation over a batch of (image, prompt) pairs: what evaluation, in-loop
validation and serving all run, so each gets the same text for the same input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from PIL import Image
from transformers import PaliGemmaProcessor

IMAGE_TOKEN = "<image>"


class Generator(Protocol):
    """A PaliGemma, plain or wrapped by peft: anything with ``generate``."""

    def eval(self) -> Any: ...

    def generate(self, **inputs: Any) -> torch.Tensor: ...


def prompt_batch(processor: PaliGemmaProcessor, images: Sequence[Image.Image], prompts: Sequence[str]) -> Any:
    """A prompt-only batch (the processor left-pads, so new tokens line up)."""
    return processor(
        text=[IMAGE_TOKEN + p for p in prompts], images=list(images), return_tensors="pt", padding="longest"
    )


@torch.inference_mode()
def greedy_generate(
    model: Generator,
    processor: PaliGemmaProcessor,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
) -> list[str]:
    """The greedy continuation of each prompt, special tokens dropped and stripped.

    Each row stops at ``<eos>`` (the batch runs until every row has, or ``max_new_tokens``),
    with the KV cache on. Only the new tokens are decoded.
    """
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    batch = prompt_batch(processor, images, prompts)
    device = getattr(model, "device", None)
    if device is not None:
        batch = batch.to(device)
    generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True)
    new_tokens = generated[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
