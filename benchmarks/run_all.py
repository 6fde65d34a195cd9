"""Run every benchmark and write ``benchmarks/RESULTS.md``: machine, versions, each table
and its ratios. ``make bench`` runs this (about 15 minutes on 2 CPU cores).

    .venv/bin/python -m benchmarks.run_all [--only NAME ...] [--out benchmarks/RESULTS.md]

Each benchmark runs its own baseline in the same process and reports ratios; absolute
times are context. The GPU-scale benchmark runs only where a CUDA device is visible;
elsewhere RESULTS.md says so. A benchmark that fails is reported as failed, the others
still run, and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import torch

from benchmarks import (
    data_version,
    detection_scoring,
    feature_cache,
    generation,
    gpu_scale,
    hf_trainer_parity,
    orchestration_overhead,
    padding,
    predict_throughput,
    throughput,
)
from benchmarks.common import Section, machine

OUT = Path(__file__).resolve().parent / "RESULTS.md"

# In this order; the demo's overhead last (it runs the whole pipeline).
BENCHMARKS: dict[str, Callable[[], Section]] = {
    "throughput": throughput.measure,
    "generation": generation.measure,
    "predict_throughput": predict_throughput.measure,
    "detection_scoring": detection_scoring.measure,
    "feature_cache": feature_cache.measure,
    "padding": padding.measure,
    "data_version": data_version.measure,
    "gpu_scale": gpu_scale.measure,
    "hf_trainer_parity": partial(hf_trainer_parity.measure, 2000, 200, 300, [0, 1, 2]),
    "orchestration_overhead": orchestration_overhead.measure,
}

NO_GPU = """## GPU scale: PaliGemma 2 at published shapes through training.train, random weights

Not run: this machine has no GPU. `python -m benchmarks.gpu_scale` (or `bash benchmarks/gpu_session.sh`,
the gpu tests included) trains 3B-448, 3B-224 and 10B-224 LoRA and 3B-448 full through `training.train`
on random-init bases (`configs/gpu_scale/*.yaml`), printing samples/s, model-FLOPs MFU against the chip's
dense bf16 peak and peak allocated/reserved memory; tested on a CPU with `--shrink`.
Targets on an H100/H200: 3B-448 LoRA at batch 8 in <= 40 GB and >= 40 % MFU.
"""


def run(names: list[str]) -> tuple[list[str], list[str]]:
    """Markdown of each benchmark in ``names`` (in the fixed order) and the names that failed."""
    parts, failed = [], []
    for name, measure in BENCHMARKS.items():
        if name not in names:
            continue
        if name == "gpu_scale" and not torch.cuda.is_available():
            parts.append(NO_GPU)
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            section = measure()
        except Exception:  # report it and go on: one broken benchmark should not hide the others
            failed.append(name)
            parts.append(f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()[-3000:]}```\n")
            print(parts[-1], file=sys.stderr, flush=True)
            continue
        section.notes.append(f"({time.perf_counter() - start:.0f} s for this benchmark.)")
        section.print()
        parts.append(section.markdown())
    return parts, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    start = time.perf_counter()
    parts, failed = run(args.only)
    minutes = (time.perf_counter() - start) / 60
    facts = "\n".join(f"| {k} | {v} |" for k, v in machine().items())
    header = (
        "# Benchmark results\n\n"
        f"Written by `make bench` (`python -m benchmarks.run_all`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"in {minutes:.1f} minutes. Every benchmark runs its baseline in the same process, alternating "
        "repetitions with the candidate and keeping medians; the ratios are the results, absolute times "
        "are context (the cores are shared, so they move from run to run).\n\n"
        f"| machine | |\n|---|---|\n{facts}\n"
    )
    args.out.write_text(header + "\n" + "\n".join(parts))
    print(f"wrote {args.out} ({minutes:.1f} min)", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
