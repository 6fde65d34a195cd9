"""How long `palitune data version` takes on a large dataset of small images.

Renders N synthetic detection examples (default 20,000; that generator never repeats an
image), then times, in this one process:
  - baseline: copying the folder twice (what add + push must at least do: into the cache,
    into the remote), with shutil;
  - `version_dataset`: DVC add + push to a local folder remote;
  - re-versioning the unchanged folder (the cost of a no-op rerun);
  - restoring the version from the remote alone into a fresh repository.
Prints absolute seconds as context and ratios against the copy baseline.

    .venv/bin/python benchmarks/data_version.py [--examples 20000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from data.synthetic import SplitSizes, write_synthetic
from data.versioning import ensure_repo, restore_dataset, version_dataset


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    args = parser.parse_args()
    n = args.examples
    with tempfile.TemporaryDirectory(prefix="palitune-bench-") as tmp:
        root = Path(tmp) / "ws"
        ensure_repo(root, Path(tmp) / "remote")
        render_s, dataset = _timed(
            lambda: write_synthetic(
                "detect", root / "datasets" / "detect", sizes=SplitSizes(train=n - n // 10, val=n // 20, test=n // 20)
            )
        )
        copy_s, _ = _timed(lambda: [shutil.copytree(dataset, Path(tmp) / f"copy{i}") for i in range(2)])
        version_s, version = _timed(lambda: version_dataset(root, dataset))
        again_s, _ = _timed(lambda: version_dataset(root, dataset))
        clone = Path(tmp) / "clone"
        ensure_repo(clone, Path(tmp) / "remote")
        restore_s, _ = _timed(lambda: restore_dataset(clone, version.hash, clone / "datasets" / "vqa"))
    files = version.files
    print(f"dataset: {files} files, {version.size / 2**20:.1f} MiB (rendered in {render_s:.1f} s)")
    print(f"{'step':<34}{'seconds':>9}{'ms/file':>9}{'x copy baseline':>17}")
    for name, seconds in [
        ("baseline: copy folder twice", copy_s),
        ("data version (dvc add + push)", version_s),
        ("data version again (unchanged)", again_s),
        ("checkout from remote + verify", restore_s),
    ]:
        print(f"{name:<34}{seconds:>9.2f}{seconds / files * 1000:>9.3f}{seconds / copy_s:>17.1f}")


if __name__ == "__main__":
    main()
