"""Training throughput and MFU, fp32 vs bf16 autocast, for the tiny base and a larger
CPU-sized PaliGemma shape, measured in one process.

    .venv/bin/python -m benchmarks.throughput [--repeats 5] [--steps 2]

Each shape is built from a config (random weights) and trained the demo's way (LoRA on the
language model, projector trained, vision tower frozen; AdamW) on the same synthetic VQA
batch. The fp32 and bf16 models (one copy each, same initial weights) take their steps in
turn, ``--steps`` at a time, ``--repeats`` times; the median step time of each gives:

- samples/s and tokens/s (non-pad tokens, image tokens included);
- MFU: the FLOPs of one step as torch's FlopCounterMode counts them (the matmuls and
  attention executed, forward and backward) / step time / the peak matmul FLOP/s of that
  dtype, measured in this process on a 2048^3 matmul;
- the bf16 speed-up: fp32 step time / bf16 step time. bf16 autocast is what
  ``precision: bf16`` makes Accelerate do.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

from benchmarks.common import CPU_SIZED, CPU_SIZED_NAME, Section, interleaved, matmul_peak, training_flops
from data.schema import read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from models.tiny_base import TinyBaseSpec, build_tiny_base
from training.collate import TrainCollator
from training.config import RunConfig
from training.peft_setup import prepare_model

# name -> (architecture, batch size)
SHAPES: dict[str, tuple[TinyBaseSpec, int]] = {
    "tiny demo (64 px, hidden 64, 2+2 layers)": (TinyBaseSpec(), 32),
    CPU_SIZED_NAME: (CPU_SIZED, 8),
}


class _Trainer:
    """One model, its optimizer and its precision, stepping on one batch."""

    def __init__(self, model: Any, batch: dict[str, torch.Tensor], bf16: bool):
        self.model, self.batch = model.train(), batch
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def forward_backward(self) -> None:
        with self.autocast():
            loss = self.model(**self.batch).loss
        loss.backward()

    def step(self) -> None:
        self.forward_backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def measure(repeats: int = 5, steps: int = 2) -> Section:
    # The peak is re-measured after each shape and the highest kept: a matmul timed while the
    # shared cores were busy would understate it (and overstate MFU).
    peaks = {False: matmul_peak(torch.float32), True: matmul_peak(torch.bfloat16)}
    rows = [["shape", "batch", "precision", "ms/step", "samples/s", "tokens/s", "GFLOP/step", "TFLOP/s", "MFU"]]
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_shapes_vqa(Path(tmp) / "vqa", sizes=SplitSizes(32, 1, 1))
        for name, (spec, batch_size) in SHAPES.items():
            base = build_tiny_base(Path(tmp) / f"base-{spec.image_size}", spec)
            processor = AutoProcessor.from_pretrained(base)
            batch = dict(TrainCollator(processor, data)(read_split(data, "train")[:batch_size]))
            model = PaliGemmaForConditionalGeneration.from_pretrained(base, use_safetensors=True)
            model, _ = prepare_model(model, RunConfig())  # the demo's method: LoRA, vision frozen
            trainers = {bf16: _Trainer(copy.deepcopy(model), batch, bf16) for bf16 in (False, True)}
            for trainer in trainers.values():
                trainer.step()  # warm-up: allocations, autocast caches
            flops = {bf16: training_flops(t.forward_backward) for bf16, t in trainers.items()}
            for trainer in trainers.values():
                trainer.optimizer.zero_grad(set_to_none=True)
            times = interleaved(
                {bf16: lambda t=t: [t.step() for _ in range(steps)] for bf16, t in trainers.items()}, repeats
            )
            peaks = {
                bf16: max(peak, matmul_peak(torch.bfloat16 if bf16 else torch.float32)) for bf16, peak in peaks.items()
            }
            tokens = int(batch["attention_mask"].sum())
            for bf16 in (False, True):
                seconds = times[bf16] / steps
                achieved = flops[bf16] / seconds
                rows.append([
                    name, str(batch_size), "bf16 autocast" if bf16 else "fp32", f"{seconds * 1e3:.1f}",
                    f"{batch_size / seconds:.1f}", f"{tokens / seconds:.0f}", f"{flops[bf16] / 1e9:.2f}",
                    f"{achieved / 1e12:.3f}", f"{100 * achieved / peaks[bf16]:.1f} %",
                ])  # fmt: skip
            ratios[f"bf16 autocast vs fp32 step time, {name}"] = f"{times[False] / times[True]:.2f}x"
    return Section(
        title="Training throughput and MFU: fp32 vs bf16 autocast",
        command="python -m benchmarks.throughput",
        table=rows,
        ratios=ratios,
        notes=[
            f"Peak matmul measured in this process (2048^3): fp32 {peaks[False] / 1e12:.3f} TFLOP/s, "
            f"bf16 {peaks[True] / 1e12:.3f} TFLOP/s; MFU is against the peak of the step's dtype. "
            "Method: the demo's (LoRA on the language model, projector trained, vision tower frozen and "
            "re-run every step: no feature cache here). Median of interleaved repetitions."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    measure(args.repeats, args.steps).print()


if __name__ == "__main__":
    main()
