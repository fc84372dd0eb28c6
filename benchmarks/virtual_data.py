"""A virtual dataset: image pairs computed per chunk on demand, never stored.

Every chunk is a deterministic function of (image, source/target, block index): a periodic
pattern of bright spots over a background of 100 plus integer noise, so the background filter
keeps a realistic part of the image and the percentiles vary per image.  The arrays are plain
dask graphs (one task per chunk, names fixed by the parameters), so any number of images costs
nothing until a chunk is computed, and a chunk costs about as much as decoding a compressed one.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

PERIOD = (32, 128, 128)
"""Period of the spot pattern per axis (divides the chunk sizes used, so chunks share it)."""
PHASES = 4


@functools.lru_cache(maxsize=2 * PHASES)
def _template(phase: int, kind: int, shape: tuple[int, ...]) -> np.ndarray:
    """Spots (positive part of cos^4 per axis) of a chunk, for one of ``PHASES`` phases."""
    field = np.ones((), np.float32)
    for n, period in zip(shape, PERIOD[-len(shape) :], strict=True):
        t = (np.arange(n, dtype=np.float32) + 7 * phase) * np.float32(2 * math.pi / period)
        field = np.multiply.outer(field, np.maximum(np.cos(t), 0) ** 4)
    amp = np.float32(1500.0 if kind == 1 else 600.0)
    return (field * amp).astype(np.uint16) + np.uint16(100)


@functools.lru_cache(maxsize=2)
def _noise(kind: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(kind)
    return rng.integers(0, 32 if kind == 0 else 8, size=2 * size, dtype=np.uint16)


def virtual_block(
    image: int, kind: int, block: tuple[int, ...], offset: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """One uint16 chunk: the image's spot pattern plus noise shifted by the block index.

    ``offset`` (the chunk's position) is accepted for chunks that do not start on a period.
    """
    aligned = all(o % p == 0 for o, p in zip(offset, PERIOD[-len(shape) :], strict=True))
    phase = image % PHASES if aligned else (image + sum(offset)) % PHASES
    size = math.prod(shape)
    shift = hash((image, kind, *block)) % size
    noise = _noise(kind, size)[shift : shift + size].reshape(shape)
    return _template(phase, kind, tuple(shape)) + noise


def virtual_image(
    image: int, kind: int, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> da.Array:
    """Image ``image`` (kind 0: source, 1: target) as a dask array of ``chunks``."""
    nchunks = da.core.normalize_chunks(chunks, shape)
    name = f"virtual-{'xy'[kind]}{image}-{tokenize(image, kind, shape, chunks)}"
    offsets = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in nchunks]
    dsk: dict[Any, Any] = {}
    for idx in np.ndindex(*[len(c) for c in nchunks]):
        off = tuple(int(offsets[a][i]) for a, i in enumerate(idx))
        shp = tuple(int(nchunks[a][i]) for a, i in enumerate(idx))
        dsk[(name, *idx)] = (virtual_block, image, kind, idx, off, shp)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, nchunks, dtype=np.uint16)


def virtual_pairs(n: int, shape: tuple[int, ...], chunks: tuple[int, ...], first: int = 0) -> Any:
    """RawData of ``n`` virtual pairs (images ``first .. first + n - 1``)."""
    from caredask.csbdeep import RawData

    xs = [virtual_image(i, 0, shape, chunks) for i in range(first, first + n)]
    ys = [virtual_image(i, 1, shape, chunks) for i in range(first, first + n)]
    return RawData.from_arrays(xs, ys, axes="ZYX"[-len(shape) :])
