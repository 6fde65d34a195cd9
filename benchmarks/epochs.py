"""A bare training epoch for the data-path benchmarks: the loop of ``training.train`` (forward,
backward, AdamW step) without Accelerate, logging or checkpoints, so that what differs
between two runs is only the data path being measured."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from data.schema import Example
from training.collate import TrainCollator
from training.config import RunConfig
from training.feature_cache import ImageFeatures
from training.peft_setup import prepare_model


class EpochRunner:
    """One trainable copy of a model and its optimizer; ``epoch()`` trains one pass over a loader."""

    def __init__(self, base: Any, config: RunConfig, seed: int = 0):
        torch.manual_seed(seed)  # the same LoRA initialisation in every copy
        model, _ = prepare_model(copy.deepcopy(base), config)
        self.model = model.train()
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-3)
        self.losses: list[list[float]] = []  # per epoch, per step

    def epoch(self, loader: DataLoader) -> None:
        losses = []
        for batch in loader:
            loss = self.model(**batch).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        self.losses.append(losses)


def loader(
    processor: Any,
    root: Path,
    examples: Sequence[Example],
    sampler: Sampler[int],
    batch_size: int,
    features: ImageFeatures | None = None,
) -> DataLoader:
    """The DataLoader ``training.train`` builds (same collator, in-process collation)."""
    return DataLoader(
        list(examples),  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        collate_fn=TrainCollator(processor, root, features),
    )


def max_difference(a: Sequence[float], b: Sequence[float]) -> float:
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
