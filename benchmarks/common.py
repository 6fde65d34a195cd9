"""What every benchmark shares: interleaved timing, the machine's own matmul peak, results.

Timings on a shared machine drift (other processes, clock changes), so a benchmark never
times its baseline and its candidate in two separate blocks: ``interleaved`` runs them in
turn, repetition after repetition, in one process, and keeps the median of each. Absolute
times are reported as context; the ratio is the result.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from models.tiny_base import TinyBaseSpec

# A PaliGemma of CPU size for the throughput benchmarks: 224 px (196 image tokens), hidden 384,
# 4 layers in each tower; large enough for matmuls to dominate, small enough for a 2-core CPU.
CPU_SIZED = TinyBaseSpec(
    image_size=224, patch_size=16, vision_hidden=384, text_hidden=384, intermediate=1536, heads=6, layers=4
)
CPU_SIZED_NAME = "CPU-sized (224 px/16, hidden 384, 4+4 layers)"


@dataclass
class Section:
    """One benchmark's outcome: a markdown table, the headline ratios and notes."""

    title: str
    command: str
    table: list[list[str]]  # first row: the header
    ratios: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        header, *rows = self.table
        lines = [f"## {self.title}", "", f"`{self.command}`", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        if self.ratios:
            lines += ["", *(f"- **{name}: {value}**" for name, value in self.ratios.items())]
        lines += ["", *(f"{note}" for note in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"

    def print(self) -> None:
        print(self.markdown(), flush=True)


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run in turn ``repeats`` times (A B A B ..., the
    order flipped every round so neither always runs first)."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_peak(dtype: torch.dtype, device: str = "cpu", size: int | None = None, repeats: int = 8) -> float:
    """The FLOP/s of a large square matmul in ``dtype`` on ``device``, measured now (best of
    ``repeats``): the peak MFU is measured against, on this machine as it is loaded."""
    size = size or (8192 if device == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for i in range(repeats + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # warm-up
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step`` (a forward and backward), counted by torch's FlopCounterMode:
    the matmuls and attention actually executed, so LoRA's frozen weights count only the
    work they do (no weight gradients)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_matmul_features() -> str:
    """The CPU's matrix extensions that decide bf16 speed (AMX, AVX-512 BF16), if any."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        flags = []
    found = [f for f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return ", ".join(found) or "none found"


def machine() -> dict[str, str]:
    """The facts a reader needs to compare these numbers with theirs."""
    import accelerate
    import peft
    import transformers

    return {
        "cpu": f"{cpu_name()} ({cpu_matmul_features()})",
        "cores": f"{os.cpu_count()} visible, torch threads {torch.get_num_threads()}",
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
    }
