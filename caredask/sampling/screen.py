"""``on_empty='skip'``: find the images the background filter leaves nothing to sample from.

Skipping must give what the same call gives without those images, so they are found before any
random number is drawn: one statistics pass for the filter thresholds (and the block maxima)
and one counting mask pass, batch by batch; then the caller draws for the images kept.
"""

from __future__ import annotations

from typing import Any

from .pipeline import Item, PatchJob, batches, count_valid
from .stats import batch_statistics, check_finite

__all__ = ["ON_EMPTY", "find_empty"]

ON_EMPTY = ("raise", "skip")


def find_empty(items: list[Item], job: PatchJob, channel: int | None) -> list[Item]:
    """The items with no eligible patch centre (their ``stats`` hold the thresholds)."""
    empty: list[Item] = []
    for batch in batches(iter(items), job):
        stats = batch_statistics(
            [(it.x, it.y, channel, None) for it in batch], job.patch_filter, None
        )
        for it, st in zip(batch, stats, strict=True):
            it.stats = st
            check_finite(it.name, it.target, st, job.nonfinite)
        counts = count_valid(batch, job)
        empty += [it for it, n in zip(batch, counts, strict=True) if n == 0]
    return empty


def describe_skipped(skipped: list[Any]) -> str:
    """``2 images without foreground skipped: a.tif, b.tif``."""
    names = ", ".join(it.name for it in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    return f"{len(skipped)} image(s) without foreground skipped: {names}"
