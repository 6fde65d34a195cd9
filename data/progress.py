"""A progress hook the data package reports through, drawing nothing itself.

The CLI passes one that draws a tqdm bar on a terminal (``palitune.cli.common.progress``);
library callers pass none, or their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    """Shows how far a loop has got (a progress bar, say) while yielding ``items`` unchanged.

    ``desc`` names the loop (``ingest train``), ``total`` is the number of items when known and
    ``unit`` what one item is (``row``, ``line``, ``image``). The CLI passes one that draws a
    tqdm bar on a terminal; the data package draws nothing itself.
    """

    def __call__(self, items: Iterable[T], *, desc: str, total: int | None, unit: str) -> Iterable[T]: ...


def tracked(
    items: Iterable[T], progress: Progress | None, desc: str, *, unit: str, total: int | None = None
) -> Iterable[T]:
    """``items`` passed through ``progress``, or ``items`` themselves when there is none.

    ``total`` defaults to ``len(items)`` when they have a length.
    """
    if progress is None:
        return items
    if total is None and isinstance(items, Sized):
        total = len(items)
    return progress(items, desc=desc, total=total, unit=unit)
