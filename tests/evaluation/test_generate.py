"""Batched greedy generation: the same text as one example at a time, in input order."""

from pathlib import Path

import torch

from data.schema import read_split
from evaluation.generate import generate_answers
from models.loading import load_base


def test_batched_generation_equals_one_by_one(tiny_base: Path, small_vqa: Path) -> None:
    model, processor = load_base(str(tiny_base))
    torch.manual_seed(0)
    with torch.no_grad():  # a model that answers different things for different inputs
        for param in model.model.language_model.parameters():
            param.add_(torch.randn_like(param) * 0.3)
    examples = read_split(small_vqa, "test")
    batched = generate_answers(model, processor, small_vqa, examples, batch_size=8, max_new_tokens=12)
    single = generate_answers(model, processor, small_vqa, examples, batch_size=1, max_new_tokens=12)
    assert batched == single
    assert len(set(batched)) > 1, "the outputs differ between examples, so order matters"


def test_every_task_has_a_generation_budget() -> None:
    from data.tasks import TASKS

    assert all(task.max_new_tokens > 0 for task in TASKS.values())
    assert TASKS["detect"].max_new_tokens >= 5 * 10, "ten boxes of 4 <loc> tokens and a label"
