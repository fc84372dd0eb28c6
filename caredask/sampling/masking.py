"""The mask pass and rank location: csbdeep's eligible centres, blockwise and exactly.

The background filter (and a pixel mask) become one ``map_overlap`` per target, bit-packed
per line; blocks that cannot hold a centre are skipped (:mod:`caredask.masks.skip`); per-line
counts turn csbdeep's C-order ranks into coordinates (:mod:`caredask.sampling.centres`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize

from ..errors import EmptyRegionError
from ..loaders.base import region_source
from ..masks.background import (
    border_slices,
    dilate_above_mask,
    erode_pixel_mask,
    filter_size,
    packed_line_counts,
    packed_mask,
)
from ..masks.skip import dilate_above_regions, drop_dead_blocks, live_blocks, reads_of
from .centres import choose_ranks, locate_ranks, ranks_to_centres_dense
from .items import Item, PatchJob

__all__ = ["count_valid", "empty_region", "locate_centres", "stencil_chunks"]

HALO_AMPLIFICATION = 2.0
"""Largest ratio of decoded cells to a block's own cells for which the mask reads by region."""


def _region_mask(item: Item, job: PatchJob, thr: Any) -> da.Array | None:
    """The filter mask read by region from the store (live blocks only), if the loader can."""
    region, st = region_source(item.y), item.stats
    if region is None or st.block_max is None or "target" in item.held:
        return None
    y = item.y
    depth = [h // 2 for h in filter_size(job.patch_size)]
    # A halo slice decodes whole store cells: worth it only where cells are small next to the
    # blocks (sharded stores); with a cell per block map_overlap shares each decoded block.
    amplification = np.prod(
        [
            (max(c) / g + 2 * -(-d // g)) / (max(c) / g)
            for c, d, g in zip(y.chunks, depth, region.grid, strict=True)
        ]
    )
    if float(amplification) > HALO_AMPLIFICATION:
        return None
    live = live_blocks(y.chunks, [0] * y.ndim, depth, y.chunks, st.block_max, thr)
    m, st.mask_reread = dilate_above_regions(y, region, thr, job.patch_size, live)
    return m


def _mask_graph(item: Item, job: PatchJob, thr: Any) -> da.Array | None:
    y = item.y
    ps = job.patch_size
    if job.patch_filter is None and item.mask is None:
        return None
    if job.patch_filter is None:
        m = da.ones(y.shape, dtype=bool, chunks=y.chunks)
    elif (regional := _region_mask(item, job, thr)) is not None:
        m = regional
    else:
        y = _for_stencil(y, tuple(p // 2 for p in ps))
        m = dilate_above_mask(y, thr, ps)
    if item.mask is not None:
        mk = item.mask.rechunk(m.chunks)
        m = m & erode_pixel_mask(_for_stencil(mk, tuple(p // 2 for p in ps)).rechunk(m.chunks), ps)
    return m[border_slices(y.shape, ps)]


def stencil_chunks(
    chunks: tuple[tuple[int, ...], ...], depth: Sequence[int]
) -> tuple[tuple[int, ...], ...] | None:
    """Merge chunks along axes where they are thinner than 4 halos (``None``: keep them).

    Only merging (whole neighbouring chunks concatenated): a split-and-merge rechunk could hold
    many source chunks in memory at once.
    """
    out = []
    changed = False
    for c, d in zip(chunks, depth, strict=True):
        want = 4 * d
        if d == 0 or len(c) == 1 or min(c[:-1] or c) >= want:
            out.append(c)
            continue
        merged, acc = [], 0
        for size in c:
            acc += size
            if acc >= want:
                merged.append(acc)
                acc = 0
        if acc:
            if merged:
                merged[-1] += acc
            else:
                merged.append(acc)
        out.append(tuple(merged))
        changed = True
    return tuple(out) if changed else None


def _for_stencil(a: da.Array, depth: Sequence[int]) -> da.Array:
    chunks = stencil_chunks(a.chunks, depth)
    a = a if chunks is None else a.rechunk(chunks)
    # map_overlap needs every chunk at least as large as the halo (short last chunks).
    fixed = tuple(
        ensure_minimum_chunksize(max(d, 1), c) if len(c) > 1 else c
        for d, c in zip(depth, a.chunks, strict=True)
    )
    return a if fixed == a.chunks else a.rechunk(fixed)


def _live_packed(it: Item, m: da.Array, job: PatchJob) -> da.Array:
    """The bit-packed mask, blocks that cannot hold a centre skipped (see masks.skip)."""
    packed = packed_mask(m)
    st = it.stats
    if st.block_max is None or st.threshold is None or st.mask_reread is not None:
        return packed  # no maxima, or read by region (dead blocks are zeros already)
    offset = [p // 2 for p in job.patch_size]
    depth = [h // 2 for h in filter_size(job.patch_size)]
    live = live_blocks(m.chunks, offset, depth, it.y.chunks, st.block_max, st.threshold)
    packed = drop_dead_blocks(packed, live)
    # held in memory (read once): the mask pass reads nothing from the store
    held = "target" in it.held
    st.mask_reread = 0.0 if held else reads_of(packed, it.y) / max(it.y.npartitions, 1)
    return packed


def empty_region(item: Item) -> EmptyRegionError:
    bad = item.stats.nonfinite.get("target", 0)
    why = (
        f"its target {item.target} holds {bad} non-finite values (NaN or infinity), so the "
        "filter threshold is NaN - replace them"
        if bad
        else "the target may be empty or constant - check the image, lower the filter "
        "threshold, pass patch_filter=None, or skip such images with on_empty='skip'"
    )
    return EmptyRegionError(
        f"{item.name}: 'patch_filter' didn't return any region to sample from; {why}"
    )


def count_valid(items: list[Item], job: PatchJob) -> list[int]:
    """Eligible patch centres of each item (thresholds in ``item.stats``), counted blockwise."""
    out: list[Any] = []
    for it in items:
        m = _mask_graph(it, job, it.stats.threshold)
        if m is None:
            out.append(
                int(np.prod([s.stop - s.start for s in border_slices(it.y.shape, job.patch_size)]))
            )
        else:
            out.append(packed_line_counts(_live_packed(it, m, job)).sum())
    return [int(v) for v in dask.compute(*out)]


def locate_centres(items: list[Item], job: PatchJob) -> None:
    assert all(it.seed is not None for it in items)
    ps = job.patch_size
    masks = [_mask_graph(it, job, it.stats.threshold) for it in items]
    packed = [_live_packed(it, m, job) for it, m in zip(items, masks, strict=True) if m is not None]
    packed = list(dask.persist(*packed)) if packed else []
    counts = dask.compute(*[packed_line_counts(p) for p in packed]) if packed else ()
    j = 0
    for it, m in zip(items, masks, strict=True):
        border = border_slices(it.y.shape, ps)
        start = [s.start for s in border]
        if m is None:
            bshape = [s.stop - s.start for s in border]
            n_valid = int(np.prod(bshape))
            it.starts = ranks_to_centres_dense(
                choose_ranks(int(it.seed or 0), n_valid, job.k), bshape, start
            )
        else:
            c = counts[j]
            n_valid = int(c.sum())
            if n_valid == 0:
                raise empty_region(it)
            ranks = choose_ranks(int(it.seed or 0), n_valid, job.k)
            it.starts = locate_ranks(ranks, c, packed[j], m.chunks[-1], start)
            j += 1
        it.starts = it.starts - np.array([p // 2 for p in ps], dtype=np.int64)
