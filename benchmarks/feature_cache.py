"""The frozen vision tower's feature cache: epoch time with vs without it, same losses.

    .venv/bin/python -m benchmarks.feature_cache [--repeats 3]

For the tiny demo base and a larger CPU-sized shape: the demo's method (LoRA on the language
model, projector trained, vision tower frozen), two copies of the same model trained one
epoch at a time in turn, one reading pixels (decode, resize, SigLIP forward every step),
one reading the cached features (``feature_cache: true``). Prints the median epoch time of
each, the ratio, the one-time cost of filling the cache, and the largest difference between
the two runs' per-step losses of the first epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import CPU_SIZED, CPU_SIZED_NAME, Section, interleaved
from benchmarks.epochs import EpochRunner, loader, max_difference
from data.schema import read_split
from data.synthetic import SplitSizes, write_shapes_vqa
from models.loading import load_base
from models.tiny_base import TinyBaseSpec, build_tiny_base
from training.config import RunConfig
from training.feature_cache import cache_key, load_or_compute_features, serve_cached_features
from training.sampling import EpochSampler

# name -> (architecture, train examples, batch size)
SHAPES: dict[str, tuple[TinyBaseSpec, int, int]] = {
    "tiny demo (64 px)": (TinyBaseSpec(), 640, 32),
    CPU_SIZED_NAME: (CPU_SIZED, 64, 8),
}


def measure(repeats: int = 3) -> Section:
    config = RunConfig()  # the demo's method
    rows = [["shape", "images", "epoch s, pixels", "epoch s, cached", "speed-up", "cache fill s", "max |loss diff|"]]
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (spec, size, batch_size) in SHAPES.items():
            base_dir = build_tiny_base(Path(tmp) / f"base-{spec.image_size}", spec)
            data = write_shapes_vqa(Path(tmp) / f"vqa-{size}", sizes=SplitSizes(size, 1, 1))
            base, processor = load_base(str(base_dir))
            examples = read_split(data, "train")
            key = cache_key(dataset=f"bench-{size}", base_ref=str(base_dir), model=base, processor=processor,
                            precision="fp32", device=torch.device("cpu"))  # fmt: skip
            start = time.perf_counter()
            features = load_or_compute_features(
                Path(tmp) / "cache", key, base, processor, data, examples, batch_size=batch_size
            )
            fill = time.perf_counter() - start
            runners = {cached: EpochRunner(base, config) for cached in (False, True)}
            loaders = {
                cached: loader(processor, data, examples, EpochSampler(len(examples), 0), batch_size,
                               features if cached else None)
                for cached in (False, True)
            }  # fmt: skip

            def epoch(cached: bool, runners: dict = runners, loaders: dict = loaders) -> None:
                runner = runners[cached]
                with serve_cached_features(runner.model.base_model.model) if cached else contextlib.nullcontext():
                    runner.epoch(loaders[cached])

            times = interleaved({cached: lambda c=cached: epoch(c) for cached in (False, True)}, repeats)
            difference = max_difference(runners[False].losses[0], runners[True].losses[0])
            rows.append([name, str(size), f"{times[False]:.2f}", f"{times[True]:.2f}",
                         f"{times[False] / times[True]:.2f}x", f"{fill:.2f}", f"{difference:.1e}"])  # fmt: skip
            ratios[f"epoch with cache vs without, {name}"] = f"{times[False] / times[True]:.2f}x faster"
    return Section(
        title="Frozen vision tower feature cache",
        command="python -m benchmarks.feature_cache",
        table=rows,
        ratios=ratios,
        notes=[
            "Both runs train the same initial model on the same batches in the same order; the cache is "
            "filled once per dataset version and base (the fill time is paid by the first run only, "
            "then reused by every later epoch and run). Median of interleaved epochs."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    measure(parser.parse_args().repeats).print()


if __name__ == "__main__":
    main()
