"""fp32 vs bf16 autocast training step time on this machine, for the tiny base and a larger
CPU-sized PaliGemma shape, measured in the same process; prints the ratio.

    .venv/bin/python benchmarks/precision.py [--steps 30]

Each shape is built from a config (random weights), fed the same synthetic VQA batch, and
timed over ``--steps`` optimizer steps (full fine-tune, AdamW) after 3 warm-up steps, once
with fp32 and once under ``torch.autocast("cpu", dtype=torch.bfloat16)``, which is what
``precision: bf16`` makes Accelerate do on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

from data.schema import read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from training.collate import TrainCollator
from training.tiny_base import TinyBaseSpec, build_tiny_base

SHAPES = {
    "tiny (64 px, hidden 64, 2 layers)": TinyBaseSpec(),
    "larger (224 px, hidden 384, 4 layers)": TinyBaseSpec(
        image_size=224, patch_size=16, vision_hidden=384, text_hidden=384, intermediate=1536, layers=4, heads=6
    ),
}


def step_time(model, batch, bf16: bool, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 3:
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]  # median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| shape | fp32 ms/step | bf16 ms/step | bf16 speed-up |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data = write_shapes_vqa(Path(tmp) / "vqa", sizes=SplitSizes(args.batch, 1, 1))
        for name, spec in SHAPES.items():
            base = build_tiny_base(Path(tmp) / name.split()[0], spec)
            processor = AutoProcessor.from_pretrained(base)
            batch = dict(TrainCollator(processor, data)(read_split(data, "train")[: args.batch]))
            timings = {}
            for bf16 in (False, True):
                torch.manual_seed(0)
                model = PaliGemmaForConditionalGeneration.from_pretrained(base, use_safetensors=True).train()
                timings[bf16] = step_time(model, batch, bf16, args.steps)
            print(
                f"| {name} | {timings[False] * 1e3:.1f} | {timings[True] * 1e3:.1f} | "
                f"{timings[False] / timings[True]:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
