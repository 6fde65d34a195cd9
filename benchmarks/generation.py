"""Batched vs one-by-one greedy generation: same outputs, and how much faster batching is.

    .venv/bin/python benchmarks/generation.py [--examples 200] [--batch 64] [--tokens 16]

Both runs decode the same test examples with the same model in this process (the tiny base
with perturbed language-model weights, so that every example gets its own answer), with the
KV cache on; the outputs are compared and the wall-time ratio printed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from data.schema import read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from evaluation.generate import generate_answers
from training.model_loading import load_base
from training.tiny_base import build_tiny_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_base(Path(tmp) / "base")
        data = write_shapes_vqa(Path(tmp) / "vqa", sizes=SplitSizes(1, 1, args.examples))
        model, processor = load_base(str(base))
        torch.manual_seed(0)
        with torch.no_grad():
            for param in model.model.language_model.parameters():
                param.add_(torch.randn_like(param) * 0.3)
        examples = read_split(data, "test")
        timings, outputs = {}, {}
        for batch in (args.batch, 1):
            start = time.perf_counter()
            outputs[batch] = generate_answers(
                model, processor, data, examples, batch_size=batch, max_new_tokens=args.tokens
            )
            timings[batch] = time.perf_counter() - start
    same = sum(a == b for a, b in zip(outputs[args.batch], outputs[1], strict=True))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(examples)} examples, {args.tokens} tokens"
    )
    print("| mode | seconds | examples/s |\n|---|---|---|")
    for batch in (1, args.batch):
        print(f"| batch {batch} | {timings[batch]:.2f} | {len(examples) / timings[batch]:.1f} |")
    print(f"batched is {timings[1] / timings[args.batch]:.1f}x faster; identical outputs: {same}/{len(examples)}")


if __name__ == "__main__":
    main()
