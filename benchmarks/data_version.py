"""How long `palitune data version` takes on a large dataset of small images.

    .venv/bin/python -m benchmarks.data_version [--examples 20000]

Renders N synthetic detection examples (default 20,000; that generator never repeats an
image), then times, in this one process:
  - baseline: copying the folder twice (what add + push must at least do: into the cache,
    into the remote), with shutil;
  - `version_dataset`: DVC add + push to a local folder remote (what `palitune data
    version` runs after validating);
  - re-versioning the unchanged folder (the cost of a no-op rerun);
  - restoring the version from the remote alone into a fresh repository, every file's md5
    checked.
Each step runs once (each changes the state the next one sees); absolute seconds are
context, the ratio to the copy baseline is the result.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from benchmarks.common import Section
from data.synthetic import SplitSizes, write_synthetic
from data.versioning import ensure_repo, restore_dataset, version_dataset

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure(n: int = 20_000) -> Section:
    with tempfile.TemporaryDirectory(prefix="palitune-bench-") as tmp:
        root = Path(tmp) / "ws"
        ensure_repo(root, Path(tmp) / "remote")
        sizes = SplitSizes(train=n - n // 10, val=n // 20, test=n // 20)
        render_s, dataset = _timed(lambda: write_synthetic("detect", root / "dvc-data" / "detect", sizes=sizes))
        copy_s, _ = _timed(lambda: [shutil.copytree(dataset, Path(tmp) / f"copy{i}") for i in range(2)])
        version_s, version = _timed(lambda: version_dataset(root, dataset))
        again_s, _ = _timed(lambda: version_dataset(root, dataset))
        clone = Path(tmp) / "clone"
        ensure_repo(clone, Path(tmp) / "remote")
        restore_s, _ = _timed(lambda: restore_dataset(clone, version.hash, clone / "dvc-data" / "detect"))
    files = version.files
    rows = [["step", "seconds", "ms/file", "x copy baseline"]]
    for name, seconds in [
        ("baseline: copy the folder twice", copy_s),
        ("data version (dvc add + push)", version_s),
        ("data version again (unchanged)", again_s),
        ("checkout from the remote + verify", restore_s),
    ]:
        rows.append([name, f"{seconds:.2f}", f"{seconds / files * 1000:.3f}", f"{seconds / copy_s:.1f}"])
    return Section(
        title=f"Data versioning at scale: {n:,} images",
        command=f"python -m benchmarks.data_version --examples {n}",
        table=rows,
        ratios={
            "data version vs copying the folder twice": f"{version_s / copy_s:.1f}x the copy time",
            "unchanged re-version vs first version": f"{again_s / version_s:.2f}x",
        },
        notes=[f"{files} files, {version.size / 2**20:.1f} MiB (rendered in {render_s:.0f} s, not counted)."],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    measure(parser.parse_args().examples).print()


if __name__ == "__main__":
    main()
