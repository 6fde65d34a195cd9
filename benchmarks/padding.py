"""Padding waste: length-grouped batches (``length_bucketing``) vs plain shuffled batches.

    .venv/bin/python -m benchmarks.padding [--repeats 3]

Two training sets for the tiny demo base: the synthetic detection set (answers of 1 to 5
boxes) and a mix of tasks (OCR words, VQA, detection, receipts read into JSON) as a
multi-task fine-tune sees them. For each, the share of pad tokens over an epoch with each
sampler, the median epoch time of two copies of the same model trained in turn (the demo's
method, feature cache on as by default), and the token-weighted mean loss of one epoch
with the initial model under both batchings, which must agree: an example's loss does not
depend on its padding.

Packing several examples into one row is not offered: PaliGemma's prefix-LM mask and its
image tokens at the start of each row would need a block-diagonal mask per example, which
the model's forward does not take.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from benchmarks.common import Section, interleaved
from benchmarks.epochs import EpochRunner, loader
from data.schema import Example, read_split
from data.synthetic import SplitSizes, write_synthetic
from models.loading import load_base
from models.tiny_base import build_tiny_base
from training.config import RunConfig
from training.feature_cache import cache_key, load_or_compute_features, serve_cached_features
from training.sampling import EpochSampler, LengthGroupedSampler, text_lengths


def _mixed(root: Path, tasks: Sequence[str], per_task: int) -> list[Example]:
    examples = []
    for task in tasks:
        folder = write_synthetic(task, root / task, sizes=SplitSizes(per_task, 1, 1))
        for example in read_split(folder, "train"):
            example.image = f"{task}/{example.image}"
            examples.append(example)
    return examples


def _pad_share(batches: DataLoader) -> float:
    pads = positions = 0
    for batch in batches:
        pads += int((batch["attention_mask"] == 0).sum())
        positions += batch["attention_mask"].numel()
    return pads / positions


@torch.no_grad()
def _epoch_loss(model: Any, batches: DataLoader) -> float:
    total, tokens = 0.0, 0
    for batch in batches:
        supervised = int((batch["labels"][:, 1:] != -100).sum())  # the shifted targets the loss averages
        total += model(**batch).loss.item() * supervised
        tokens += supervised
    return total / tokens


def measure(repeats: int = 3, per_task: int = 256, batch_size: int = 32) -> Section:
    config = RunConfig()
    rows = [["training set", "examples", "pad share, plain", "pad share, grouped", "epoch s, plain",
             "epoch s, grouped", "speed-up", "epoch loss plain / grouped"]]  # fmt: skip
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        base_dir = build_tiny_base(Path(tmp) / "base")
        base, processor = load_base(str(base_dir))
        sets = {
            "detection": _mixed(root / "detection", ["detect"], per_task * 2),
            "mixed tasks (ocr, vqa, detect, extract)": _mixed(
                root / "mixed", ["ocr", "vqa", "detect", "extract"], per_task
            ),
        }
        for name, examples in sets.items():
            folder = root / ("detection" if name == "detection" else "mixed")
            key = cache_key(dataset=f"bench-{name}", base_ref=str(base_dir), model=base, processor=processor,
                            precision="fp32", device=torch.device("cpu"))  # fmt: skip
            features = load_or_compute_features(
                Path(tmp) / "cache", key, base, processor, folder, examples, batch_size=batch_size
            )
            samplers = {
                False: EpochSampler(len(examples), 0),
                True: LengthGroupedSampler(text_lengths(processor, examples), batch_size, 0),
            }
            loaders = {g: loader(processor, folder, examples, s, batch_size, features) for g, s in samplers.items()}
            runners = {grouped: EpochRunner(base, config) for grouped in (False, True)}
            with contextlib.ExitStack() as stack:
                for model in (base, *(r.model.base_model.model for r in runners.values())):
                    stack.enter_context(serve_cached_features(model))
                pads = {g: _pad_share(batches) for g, batches in loaders.items()}
                losses = {g: _epoch_loss(base.train(), batches) for g, batches in loaders.items()}
                epochs = {g: lambda r=runners[g], b=loaders[g]: r.epoch(b) for g in (False, True)}
                times = interleaved(epochs, repeats)
            rows.append([name, str(len(examples)), f"{100 * pads[False]:.1f} %", f"{100 * pads[True]:.1f} %",
                         f"{times[False]:.2f}", f"{times[True]:.2f}", f"{times[False] / times[True]:.2f}x",
                         f"{losses[False]:.5f} / {losses[True]:.5f}"])  # fmt: skip
            ratios[f"grouped vs plain epoch time, {name}"] = (
                f"{times[False] / times[True]:.2f}x faster, pad share {100 * pads[False]:.0f} % -> "
                f"{100 * pads[True]:.0f} %"
            )
    return Section(
        title="Padding waste: length bucketing vs plain batching",
        command="python -m benchmarks.padding",
        table=rows,
        ratios=ratios,
        notes=[
            f"Tiny demo base, batch {batch_size}, 16 image tokens per row (never padding). Pad share: pad "
            "positions / all positions computed. Epoch loss: token-weighted mean loss of one epoch with the "
            "initial model, same examples, the two batchings. Median of interleaved epochs."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    measure(parser.parse_args().repeats).print()


if __name__ == "__main__":
    main()
