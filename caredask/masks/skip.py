"""Skip the mask pass where no patch centre can be: blocks whose neighbourhood is all background.

The statistics pass reads every block of the target anyway; it also records each block's
maximum (:func:`block_maxima`).  The background filter marks a centre eligible only if some
value within half a patch of it is above the threshold, so a mask block whose surroundings
(the block plus the filter's halo) hold only blocks with maxima not above the threshold is all
False: its task is replaced by zeros (:func:`drop_dead_blocks`) and dask never reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.core import flatten
from dask.highlevelgraph import HighLevelGraph
from dask.optimization import cull

from .background import _above

__all__ = ["block_max", "block_maxima", "drop_dead_blocks", "live_blocks", "reads_of"]

MAX_TASK = "caredask-blockmax"


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
