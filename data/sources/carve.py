"""Carve the splits a source lacks out of the ones it has, seeded and grouped by image.

Many sources ship one or two splits: COCO 2017 users often have only ``val2017``,
lmms-lab/DocVQA has ``validation`` and an unlabelled ``test``. Rather than refuse them,
``carve_splits`` moves images (with every example of each image) from a donor split into the
missing ones, in the proportions of ``SplitRatios`` (default 0.8 / 0.1 / 0.1).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.schema import SPLITS, DataError, Example

_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SplitRatios:
    """Shares of train, val and test; each in [0, 1], together 1."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    @classmethod
    def of(cls, values: tuple[float, ...] | list[float], *, where: Path | str) -> SplitRatios:
        """Checked ratios from three numbers (train, val, test).

        Raises:
            DataError: at ``where``, field ``--split-ratios``, when there are not three numbers,
                one is negative or not finite, or they do not sum to 1.
        """
        field = "--split-ratios"
        if len(values) != 3:
            raise DataError(where, None, field, f"expected three ratios (train, val, test), got {list(values)}")
        if not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
            raise DataError(where, None, field, f"each ratio must be between 0 and 1, got {list(values)}")
        if abs(sum(values) - 1) > _SUM_TOLERANCE:
            shown = " + ".join(f"{v:g}" for v in values)
            message = f"{shown} = {sum(values):g}; the ratios must sum to 1, e.g. 0.8,0.1,0.1"
            raise DataError(where, None, field, message)
        return cls(*values)

    def share(self, split: str) -> float:
        return float(getattr(self, split))


DEFAULT_RATIOS = SplitRatios()


def _rank(images: list[str], seed: int) -> list[str]:
    """Images in a seeded order that depends on their names only (names are content hashes)."""
    return sorted(images, key=lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest())


def _counts(n: int, donor: str, missing: list[str], ratios: SplitRatios) -> dict[str, int]:
    """How many of the donor's ``n`` images each missing split gets: its share of the donor's
    and the missing splits' ratios, at least one when its ratio is positive, while the donor
    keeps at least one when its own ratio is positive."""
    total = ratios.share(donor) + sum(ratios.share(s) for s in missing)
    counts = {s: max(1, round(n * ratios.share(s) / total)) for s in missing}
    floor = 1 if ratios.share(donor) > 0 else 0
    while sum(counts.values()) > n - floor and any(counts.values()):
        largest = max(reversed(list(counts)), key=lambda s: counts[s])  # on a tie test gives way before val
        counts[largest] -= 1
    return counts


def carve_splits(
    splits: dict[str, list[Example]], ratios: SplitRatios = DEFAULT_RATIOS, seed: int = 0
) -> tuple[dict[str, list[Example]], dict[str, Any]]:
    """Fill every empty split whose ratio is positive with images of a donor split.

    The donor is ``train`` when it has examples, else the split with the most examples. Its
    images are ranked by ``sha256(seed, image name)`` and the first ones go, in split order, to
    the missing splits; every example of an image moves with it, so no image is in two splits.
    The same source and seed always give the same splits, whatever the example order.

    Returns:
        The new splits, and ``{split: {"from": donor, "images": k, "examples": m}}`` for each
        carved split (empty when nothing was carved).
    """
    present = [s for s in SPLITS if splits.get(s)]
    missing = [s for s in SPLITS if not splits.get(s) and ratios.share(s) > 0]
    if not present or not missing:
        return splits, {}
    donor = "train" if "train" in present else max(present, key=lambda s: len(splits[s]))
    images = _rank(sorted({example.image for example in splits[donor]}), seed)
    destination: dict[str, str] = {}
    start = 0
    for split, count in _counts(len(images), donor, missing, ratios).items():
        destination.update((image, split) for image in images[start : start + count])
        start += count
    new = {split: list(splits.get(split, [])) for split in SPLITS}
    new[donor] = [e for e in splits[donor] if e.image not in destination]
    carved: dict[str, Any] = {}
    for split in missing:
        moved = [e for e in splits[donor] if destination.get(e.image) == split]
        new[split] = moved
        if moved:
            carved[split] = {"from": donor, "images": len({e.image for e in moved}), "examples": len(moved)}
    return new, carved


def all_to_test(splits: dict[str, list[Example]]) -> dict[str, list[Example]]:
    """Every example in ``test`` (an evaluation-only import), in split order."""
    return {"train": [], "val": [], "test": [e for split in SPLITS for e in splits.get(split, [])]}
