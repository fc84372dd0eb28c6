"""Skip the mask pass where no patch centre can be: blocks whose neighbourhood is all background.

The statistics pass reads every block of the target anyway; it also records each block's
maximum (:func:`block_maxima`).  The background filter marks a centre eligible only if some
value within half a patch of it is above the threshold, so a mask block whose surroundings
(the block plus the filter's halo) hold only blocks with maxima not above the threshold is all
False: its task is replaced by zeros (:func:`drop_dead_blocks`) and dask never reads it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.core import flatten
from dask.highlevelgraph import HighLevelGraph
from dask.optimization import cull

from ..loaders.base import RegionSource
from .background import _above, dilate_above, filter_size

__all__ = [
    "block_max",
    "block_maxima",
    "dilate_above_regions",
    "dilate_region",
    "drop_dead_blocks",
    "live_blocks",
    "reads_of",
]

MAX_TASK = "caredask-blockmax"
DILATE_TASK = "caredask-dilate"


def block_max(block: np.ndarray) -> np.ndarray:
    """Kernel: the block's maximum, shaped ``(1,) * ndim`` (NaN if it holds one)."""
    return np.max(block, keepdims=True)


def block_maxima(y: da.Array) -> da.Array:
    """Per-block maxima of ``y``: an array of shape ``y.numblocks``."""
    chunks = tuple((1,) * n for n in y.numblocks)
    name = f"{MAX_TASK}-{tokenize(y.name)}"
    return da.map_blocks(block_max, y, chunks=chunks, dtype=y.dtype, name=name)


def _bounds(chunks: Sequence[int], offset: int = 0) -> np.ndarray:
    return offset + np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def live_blocks(
    mask_chunks: tuple[tuple[int, ...], ...],
    offset: Sequence[int],
    depth: Sequence[int],
    y_chunks: tuple[tuple[int, ...], ...],
    y_maxima: np.ndarray,
    threshold: np.floating,
) -> np.ndarray:
    """Which mask blocks may hold an eligible centre (shape: the mask's number of blocks).

    A mask block spanning ``[a, b)`` (image coordinates: ``offset`` added) depends on the
    target within ``[a - depth, b + depth)``; it is live when a target block overlapping that
    range has a maximum above ``threshold`` (compared as the filter compares, NaN never).
    """
    above = _above(np.asarray(y_maxima), threshold)
    ranges = []
    for mc, off, d, yc in zip(mask_chunks, offset, depth, y_chunks, strict=True):
        mb, yb = _bounds(mc, off), _bounds(yc)
        lo = np.maximum(np.searchsorted(yb, mb[:-1] - d, side="right") - 1, 0)
        hi = np.minimum(np.searchsorted(yb, mb[1:] + d, side="left"), len(yc))
        ranges.append((lo, hi))
    live = np.zeros(tuple(len(mc) for mc in mask_chunks), bool)
    for idx in np.ndindex(*live.shape):
        box = tuple(slice(lo[i], hi[i]) for (lo, hi), i in zip(ranges, idx, strict=True))
        live[idx] = bool(above[box].any())
    return live


def drop_dead_blocks(a: da.Array, live: np.ndarray) -> da.Array:
    """``a`` with the blocks where ``live`` is False replaced by zeros (their inputs culled)."""
    if live.all():
        return a
    name = f"caredask-live-{tokenize(a.name, live)}"
    layer: dict[Any, Any] = {}
    for idx in np.ndindex(*a.numblocks):
        if live[idx]:
            layer[(name, *idx)] = (a.name, *idx)
        else:
            shape = tuple(c[i] for c, i in zip(a.chunks, idx, strict=True))
            layer[(name, *idx)] = np.zeros(shape, a.dtype)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[cast(Any, a)])
    return da.Array(graph, name, a.chunks, meta=a._meta)


def reads_of(a: da.Array, source: da.Array) -> int:
    """How many blocks of ``source`` computing ``a`` reads (after culling)."""
    culled, _ = cull(dict(a.__dask_graph__()), list(flatten(a.__dask_keys__())))
    return sum(1 for k in culled if isinstance(k, tuple) and k[0] == source.name)


def dilate_region(
    reader: Any,
    bounds: tuple[slice, ...],
    depth: Sequence[int],
    shape: Sequence[int],
    threshold: np.floating,
    size: tuple[int, ...],
    cval: bool,
) -> np.ndarray:
    """Task: csbdeep's filter mask on one block, reading the block and its halo from the store.

    The same as ``map_overlap(dilate_above, depth, boundary='none')`` on that block: the halo is
    clipped at the image's edges, where the kernel's padding value applies.
    """
    ext = tuple(
        slice(max(s.start - d, 0), min(s.stop + d, n))
        for s, d, n in zip(bounds, depth, shape, strict=True)
    )
    out = dilate_above(np.asarray(reader[ext]), threshold, size, cval)
    return out[
        tuple(slice(s.start - e.start, s.stop - e.start) for s, e in zip(bounds, ext, strict=True))
    ]


def dilate_above_regions(
    y: da.Array,
    region: RegionSource,
    threshold: np.floating,
    patch_size: Sequence[int],
    live: np.ndarray,
) -> tuple[da.Array, float]:
    """The filter mask of a target its loader can read by region: one task per live block.

    Dead blocks (``live`` False) are zeros without a task.  Returns the mask (on ``y``'s
    chunks) and the fraction of the store's cells the live blocks read.
    """
    size = filter_size(patch_size)
    depth = tuple(s // 2 for s in size)
    cval = bool(np.float32(0) > threshold)
    name = f"{DILATE_TASK}-{tokenize(y.name, threshold, size, live)}"
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in y.chunks]
    layer: dict[Any, Any] = {}
    cells: set[tuple[int, ...]] = set()
    for idx in np.ndindex(*y.numblocks):
        sl = tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, idx, strict=True))
        if not live[idx]:
            layer[(name, *idx)] = np.zeros(tuple(s.stop - s.start for s in sl), bool)
            continue
        task = partial(dilate_region, region.reader, sl, depth, y.shape, threshold, size, cval)
        layer[(name, *idx)] = (task,)
        cells.update(
            itertools.product(
                *[
                    range(max(s.start - d, 0) // g, (min(s.stop + d, n) - 1) // g + 1)
                    for s, d, n, g in zip(sl, depth, y.shape, region.grid, strict=True)
                ]
            )
        )
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[])
    total = int(np.prod([-(-n // g) for n, g in zip(y.shape, region.grid, strict=True)]))
    return da.Array(graph, name, y.chunks, dtype=bool), len(cells) / max(total, 1)
