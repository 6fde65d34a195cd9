"""Batched vs one-by-one greedy generation: same outputs, and how much faster batching is.

    .venv/bin/python -m benchmarks.generation [--examples 128] [--batch 64] [--tokens 16] [--repeats 3]

Both ways decode the same test examples with the same model in this process (the tiny base
with perturbed language-model weights, so that every example gets its own answer), with the
KV cache on, in turn, ``--repeats`` times; the outputs are compared and the ratio of the
median wall times printed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks.common import Section, interleaved
from data.schema import read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from evaluation.generate import generate_answers
from models.loading import load_base
from models.tiny_base import build_tiny_base


def measure(examples: int = 128, batch: int = 64, tokens: int = 16, repeats: int = 3) -> Section:
    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_base(Path(tmp) / "base")
        data = write_shapes_vqa(Path(tmp) / "vqa", sizes=SplitSizes(1, 1, examples))
        model, processor = load_base(str(base))
        torch.manual_seed(0)
        with torch.no_grad():
            for param in model.model.language_model.parameters():
                param.add_(torch.randn_like(param) * 0.3)
        split = read_split(data, "test")
        outputs: dict[int, list[str]] = {}

        def decode(size: int) -> None:
            outputs[size] = generate_answers(model, processor, data, split, batch_size=size, max_new_tokens=tokens)

        times = interleaved({size: lambda size=size: decode(size) for size in (1, batch)}, repeats)
    same = sum(a == b for a, b in zip(outputs[batch], outputs[1], strict=True))
    rows = [["mode", "seconds (median)", "examples/s", "new tokens/s (upper bound)"]]
    for size in (1, batch):
        rows.append([f"batch {size}", f"{times[size]:.2f}", f"{len(split) / times[size]:.1f}",
                     f"{len(split) * tokens / times[size]:.0f}"])  # fmt: skip
    return Section(
        title="Evaluation generation: batched vs one-by-one greedy decoding",
        command="python -m benchmarks.generation",
        table=rows,
        ratios={
            f"batch {batch} vs one-by-one": f"{times[1] / times[batch]:.1f}x faster",
            "identical outputs": f"{same}/{len(split)}",
        },
        notes=[
            f"Tiny base with perturbed language model, {len(split)} test prompts, up to {tokens} new tokens, "
            f"KV cache on, {torch.get_num_threads()} threads. Tokens/s counts the budget, not the tokens "
            "emitted before each row's <eos>."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    measure(args.examples, args.batch, args.tokens, args.repeats).print()


if __name__ == "__main__":
    main()
