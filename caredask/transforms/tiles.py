"""The global tile grid of the distortion kernels and chunkings made of whole tiles.

The PSF convolution and the seeded noise work tile by tile on a fixed grid of ``tile``-sized
tiles starting at the image origin, so their results do not depend on the dask chunks; these
helpers give the grid and rechunk a dask array so that every chunk holds whole tiles.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import dask.array as da
import numpy as np

__all__ = [
    "CHUNK_BYTES",
    "align_to_tiles",
    "chunk_starts",
    "float32_blocks",
    "tile_shape",
    "tile_starts",
]

CHUNK_BYTES = 32 * 2**20
"""About how large a rechunked block of the distortion wrappers is."""


def tile_shape(ndim: int, tile: int, channel: int | None) -> tuple[int, ...]:
    """The global tile grid: ``tile`` on every axis, 1 along the channel axis."""
    return tuple(1 if a == channel else int(tile) for a in range(ndim))


def tile_starts(shape: Sequence[int], tile: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """First pixel of every tile of ``tile``-sized tiles covering ``shape``, in C order."""
    return itertools.product(*(range(0, n, t) for n, t in zip(shape, tile, strict=True)))


def _aligned_chunks(
    shape: Sequence[int],
    chunksize: Sequence[int],
    tile: Sequence[int],
    minimum: Sequence[int],
    itemsize: int,
) -> tuple[tuple[int, ...], ...]:
    """Chunks made of whole tiles (the last one may end in a partial tile), each at least
    ``minimum`` long unless it spans the axis, about ``CHUNK_BYTES`` large."""
    size = [
        min(-(-max(c, m, 1) // t) * t, n)
        for n, c, t, m in zip(shape, chunksize, tile, minimum, strict=True)
    ]
    floor = [min(-(-max(m, 1) // t) * t, n) for n, t, m in zip(shape, tile, minimum, strict=True)]
    while int(np.prod(size)) * itemsize > CHUNK_BYTES:
        j = int(np.argmax([s / f for s, f in zip(size, floor, strict=True)]))
        if size[j] <= floor[j]:
            break
        size[j] = max(floor[j], (size[j] // 2) // tile[j] * tile[j])
    chunks = []
    for n, s, m in zip(shape, size, minimum, strict=True):
        c = [s] * (n // s)
        rest = n - s * len(c)
        if rest and c and rest < m:
            c[-1] += rest  # too short for the halo: merge into the previous chunk
        elif rest:
            c.append(rest)
        chunks.append(tuple(c))
    return tuple(chunks)


def _is_aligned(
    chunks: Sequence[Sequence[int]], tile: Sequence[int], minimum: Sequence[int]
) -> bool:
    for c, t, m in zip(chunks, tile, minimum, strict=True):
        if len(c) > 1 and (any(v % t for v in c[:-1]) or min(c) < m):
            return False
    return True


def chunk_starts(chunks: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Global start of every chunk along every axis."""
    return tuple(tuple(int(v) for v in np.cumsum((0, *c[:-1]))) for c in chunks)


def align_to_tiles(x: da.Array, tiles: Sequence[int], minimum: Sequence[int]) -> da.Array:
    """Rechunk ``x`` so every chunk holds whole tiles (and is at least ``minimum`` long)."""
    if _is_aligned(x.chunks, tiles, minimum):
        return x
    chunks = _aligned_chunks(
        x.shape, tuple(map(int, x.chunksize)), tiles, minimum, x.dtype.itemsize
    )
    return x.rechunk(chunks)


def float32_blocks(ndim: int) -> dict[str, Any]:
    """``dtype`` and ``meta`` keywords of a ``map_blocks`` call whose blocks are float32."""
    return {"dtype": np.float32, "meta": np.empty((0,) * ndim, np.float32)}
