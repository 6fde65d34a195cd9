"""Batched greedy generation on a dataset split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import PaliGemmaProcessor

from data.schema import Example
from training.collate import generation_batch


class Generator(Protocol):
    """A PaliGemma, plain or wrapped by peft: anything with ``generate``."""

    def eval(self) -> Any: ...

    def generate(self, **inputs: Any) -> torch.Tensor: ...


@torch.inference_mode()
def generate_answers(
    model: Generator,
    processor: PaliGemmaProcessor,
    root: Path,
    examples: Sequence[Example],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 16,
) -> list[str]:
    """Greedy-decode the suffix for each example, in input order.

    Prompts are left-padded, so the new tokens of every row start at the same column; only
    those are decoded, with special tokens dropped.
    """
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(examples), batch_size):
        batch = generation_batch(processor, root, list(examples[start : start + batch_size]))
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        outputs += [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
    return outputs
