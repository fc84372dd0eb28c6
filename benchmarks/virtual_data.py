"""A virtual dataset: image pairs computed per chunk on demand, never stored.

Every chunk is a deterministic function of (image, source/target, block index): a periodic
pattern of bright spots over a background of 100 plus integer noise, so the background filter
keeps a realistic part of the image and the percentiles vary per image.  The arrays are
made like a loader's (a picklable reader per image, one task per chunk, names fixed by the
parameters), so any number of images costs
nothing until a chunk is computed, and a chunk costs about as much as decoding a compressed one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any

import dask.array as da
import numpy as np

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


@dataclasses.dataclass(frozen=True)
class VirtualReader:
    """A picklable reader of one virtual image, like a chunked store: a read of any region
    computes the whole chunks it overlaps (as a store decodes them) and returns the region."""

    image: int
    kind: int
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype[Any] = dataclasses.field(default_factory=lambda: np.dtype(np.uint16))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        region = [k.indices(n)[:2] for k, n in zip(key, self.shape, strict=True)]
        out = np.empty([b - a for a, b in region], self.dtype)
        ranges = [range(a // c, -(-b // c)) for (a, b), c in zip(region, self.chunks, strict=True)]
        for idx in itertools.product(*ranges):
            off = tuple(i * c for i, c in zip(idx, self.chunks, strict=True))
            shp = tuple(min(c, n - o) for c, n, o in zip(self.chunks, self.shape, off, strict=True))
            block = virtual_block(self.image, self.kind, idx, off, shp)
            lo = [max(a, o) for (a, _), o in zip(region, off, strict=True)]
            hi = [min(b, o + n) for (_, b), o, n in zip(region, off, shp, strict=True)]
            src = tuple(slice(s - o, e - o) for s, e, o in zip(lo, hi, off, strict=True))
            dst = tuple(slice(s - a, e - a) for s, e, (a, _) in zip(lo, hi, region, strict=True))
            out[dst] = block[src]
        return out


def virtual_image(
    image: int, kind: int, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> da.Array:
    """Image ``image`` (kind 0: source, 1: target) as a dask array of ``chunks``.

    Made like a loader's array (:func:`caredask.loaders.base.reader_to_dask`), so the pipeline
    treats it as a store: region reads, work blocks grown from ``chunks`` on a cluster.
    """
    from caredask.loaders.base import reader_to_dask

    reader = VirtualReader(image, kind, tuple(shape), tuple(chunks))
    return reader_to_dask(
        reader, chunks, (image, kind, shape, chunks), prefix=f"virtual-{'xy'[kind]}{image}"
    )


def virtual_pairs(n: int, shape: tuple[int, ...], chunks: tuple[int, ...], first: int = 0) -> Any:
    """RawData of ``n`` virtual pairs (images ``first .. first + n - 1``)."""
    from caredask.csbdeep import RawData

    xs = [virtual_image(i, 0, shape, chunks) for i in range(first, first + n)]
    ys = [virtual_image(i, 1, shape, chunks) for i in range(first, first + n)]
    return RawData.from_arrays(xs, ys, axes="ZYX"[-len(shape) :])
