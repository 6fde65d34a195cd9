"""Batched greedy generation on a dataset split."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from transformers import PaliGemmaProcessor

from data.schema import Example
from data.tasks import get_task
from models.generation import Generator, greedy_generate
from models.images import open_image


def generate_answers(
    model: Generator,
    processor: PaliGemmaProcessor,
    root: Path,
    examples: Sequence[Example],
    *,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> list[str]:
    """Greedy-decode the suffix for each example, in input order.

    Prompts are left-padded, so the new tokens of every row start at the same column
    (``models.generation.greedy_generate``).

    Args:
        batch_size: prompts per ``generate`` call; 1 decodes one example at a time.
        max_new_tokens: the generation budget; default the task's (``data.tasks``), the
            largest one when the examples mix tasks.
        progress: draw a progress bar on a terminal.
    """
    from tqdm.auto import tqdm

    if max_new_tokens is None:
        max_new_tokens = max((get_task(e.task).max_new_tokens for e in examples), default=1)
    model.eval()
    outputs: list[str] = []
    bar = tqdm(total=len(examples), desc="generate", unit="ex", disable=not (progress and sys.stderr.isatty()))
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        images = [open_image(root, e.image) for e in chunk]
        outputs += greedy_generate(model, processor, images, [e.prefix for e in chunk], max_new_tokens=max_new_tokens)
        bar.update(len(chunk))
    bar.close()
    return outputs
