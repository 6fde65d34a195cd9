"""Batched greedy generation on a dataset split."""

from __future__ import annotations

import sys
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


# Enough new tokens for a complete answer of each task: a detection of several objects is
# 5 tokens per box, an extraction a JSON object; short answers stop at <eos> long before.
MAX_NEW_TOKENS = {"caption": 32, "vqa": 16, "docvqa": 32, "chartqa": 16, "ocr": 32, "detect": 128, "extract": 96}


def max_new_tokens_for(task: str) -> int:
    """The generation budget of ``task`` (32 for a task without its own)."""
    return MAX_NEW_TOKENS.get(task, 32)


@torch.inference_mode()
def generate_answers(
    model: Generator,
    processor: PaliGemmaProcessor,
    root: Path,
    examples: Sequence[Example],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 16,
    progress: bool = False,
) -> list[str]:
    """Greedy-decode the suffix for each example, in input order.

    Prompts are left-padded, so the new tokens of every row start at the same column; only
    those are decoded, with special tokens dropped. Each row stops at ``<eos>`` (the batch
    runs until every row has, or ``max_new_tokens``), with the KV cache on.

    Args:
        batch_size: prompts per ``generate`` call; 1 decodes one example at a time.
        progress: draw a progress bar on a terminal.
    """
    from tqdm.auto import tqdm

    model.eval()
    outputs: list[str] = []
    bar = tqdm(total=len(examples), desc="generate", unit="ex", disable=not (progress and sys.stderr.isatty()))
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        batch = generation_batch(processor, root, chunk)
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True)
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        outputs += [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]
        bar.update(len(chunk))
    bar.close()
    return outputs
