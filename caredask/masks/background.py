"""Blockwise patch-eligibility masks: csbdeep's background filter and pixel masks, exactly.

csbdeep marks a patch centre eligible when ``maximum_filter(y.astype(float32), h, mode='constant')
> thr`` with ``h = p//2`` (``p`` for ``p == 1``).  A maximum exceeds ``thr`` exactly when some
element of the window does, so the same mask is the box dilation of ``y > thr`` with the
padding value ``0 > thr``: a boolean stencil with a fixed halo, computed here with one
``map_overlap``.  The result is then reduced to per-line counts in C order (packed bits), which
is all that is needed to turn csbdeep's C-order ranks into coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize
from scipy import ndimage as ndi

MASK_TASK = "caredask-mask"

__all__ = [
    "above_mask",
    "border_slices",
    "box_dilate",
    "box_dilate_mask",
    "dilate_above",
    "dilate_above_mask",
    "erode_mask",
    "erode_pixel_mask",
    "filter_size",
    "line_counts",
    "pack_lines",
    "packed_line_counts",
    "packed_mask",
]


def filter_size(patch_size: Sequence[int]) -> tuple[int, ...]:
    """csbdeep's maximum-filter window: half the patch, but 1 stays 1."""
    return tuple(p // 2 if p > 1 else p for p in patch_size)


def border_slices(shape: Sequence[int], patch_size: Sequence[int]) -> tuple[slice, ...]:
    """Centres whose patch lies fully inside: ``p//2 <= r <= d - p + p//2`` on every axis."""
    return tuple(slice(p // 2, d - p + p // 2 + 1) for p, d in zip(patch_size, shape, strict=True))


def _above(block: np.ndarray, threshold: np.floating, out: np.ndarray | None = None) -> np.ndarray:
    # csbdeep compares float32(y) > float32 thr; small types compare exactly without the cast.
    if not (block.dtype.kind == "b" or block.dtype.itemsize <= 2 or block.dtype == np.float32):
        block = block.astype(np.float32)
    return np.greater(block, threshold, out=out)


def _padded(
    shape: tuple[int, ...], size: Sequence[int], cval: bool
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """A boolean buffer padded by each window (``h//2`` before, ``h - h//2 - 1`` after) and
    filled with ``cval``, and the slices of the unpadded region inside it."""
    padded = tuple(n + int(h) - 1 for n, h in zip(shape, size, strict=True))
    inner = tuple(slice(int(h) // 2, int(h) // 2 + n) for n, h in zip(shape, size, strict=True))
    return np.full(padded, cval, dtype=bool), inner


def _or_windows(f: np.ndarray, axis: int, h: int) -> None:
    """In place: ``f[i] = any(f[i : i + h])`` along ``axis`` wherever the window fits.

    A forward OR over ``w`` elements is doubled (``f[i] |= f[i + w]``) up to the largest power
    of two ``<= h``; one more overlapping OR covers ``h`` (overlaps do not matter for OR).  The
    ORs run on the flat buffer, shifted by whole steps along ``axis``: an element whose window
    fits only ever combines elements of its own line, so the flat shift is exact, and numpy
    runs it on one contiguous buffer (several times faster than strided views, and than
    scipy's generic 1-D filter on boolean data).
    """
    step = math.prod(f.shape[axis + 1 :])
    flat = f.reshape(-1)
    n, w = flat.size, 1
    while 2 * w <= h:
        flat[: n - w * step] |= flat[w * step :]
        w *= 2
    if w < h:
        flat[: n - (h - w) * step] |= flat[(h - w) * step :]


def _dilate_padded(f: np.ndarray, shape: tuple[int, ...], size: Sequence[int]) -> np.ndarray:
    # Window of output i: padded [i, i + h - 1], i.e. [i - h//2, i + h - h//2 - 1] unpadded.
    # Each pass leaves every element a later pass reads exact (padding rows hold cval's ORs).
    for axis, h in enumerate(size):
        if h > 1:
            _or_windows(f, axis, int(h))
    return f[tuple(slice(0, n) for n in shape)]


def box_dilate(mask: np.ndarray, size: Sequence[int], cval: bool) -> np.ndarray:
    """Kernel: ``maximum_filter(mask, size, mode='constant', cval=cval)`` for boolean masks.

    One padded copy of the mask (filled with ``cval``), then the ORs of each axis in place.
    """
    f, inner = _padded(mask.shape, size, cval)
    f[inner] = mask
    return _dilate_padded(f, mask.shape, size)


def dilate_above(
    block: np.ndarray, threshold: np.floating, size: tuple[int, ...], cval: bool
) -> np.ndarray:
    """Kernel: box dilation of ``block > threshold`` (window ``[i - h//2, i + h - h//2 - 1]``).

    The comparison writes straight into the padded buffer (no separate mask and copy).
    """
    f, inner = _padded(block.shape, size, cval)
    _above(block, threshold, f[inner])
    return _dilate_padded(f, block.shape, size)


def erode_mask(block: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Kernel: csbdeep's pixel-mask rule, a box erosion over the full patch (outside = False)."""
    return ndi.minimum_filter(block, size=size, mode="constant", cval=False)


def _halo(size: Sequence[int]) -> tuple[int, ...]:
    # The window reaches h//2 to the left and h - h//2 - 1 <= h//2 to the right.
    return tuple(s // 2 for s in size)


def above_mask(y: da.Array, threshold: np.floating) -> da.Array:
    """Dask twin of ``y > threshold`` as csbdeep compares (float32), one map_blocks."""
    return da.map_blocks(
        _above, y, dtype=bool, meta=np.empty((0,) * y.ndim, dtype=bool), threshold=threshold
    )


def box_dilate_mask(mask: da.Array, size: Sequence[int], cval: bool) -> da.Array:
    """Dask twin of :func:`box_dilate` (a boolean stencil with a fixed halo)."""
    return mask.map_overlap(
        box_dilate,
        depth=_halo(size),
        boundary="none",
        dtype=bool,
        meta=np.empty((0,) * mask.ndim, dtype=bool),
        size=tuple(size),
        cval=cval,
    )


def dilate_above_mask(y: da.Array, threshold: np.floating, patch_size: Sequence[int]) -> da.Array:
    """Dask twin of csbdeep's ``no_background_patches`` mask for a given threshold.

    The comparison runs blockwise first (fused with the read), so the stencil's halos and the
    chunks it keeps until their neighbours are done are booleans: half the bytes of 16-bit data
    (an eighth of float64) held and copied.
    """
    size = filter_size(patch_size)
    return box_dilate_mask(above_mask(y, threshold), size, bool(np.float32(0) > threshold))


def erode_pixel_mask(mask: da.Array, patch_size: Sequence[int]) -> da.Array:
    """Dask twin of csbdeep's ``minimum_filter(mask, patch_size, mode='constant', cval=False)``."""
    size = tuple(int(p) for p in patch_size)
    return mask.map_overlap(
        erode_mask,
        depth=_halo(size),
        boundary="none",
        dtype=bool,
        meta=np.empty((0,) * mask.ndim, dtype=bool),
        size=size,
    )


def pack_lines(block: np.ndarray) -> np.ndarray:
    """Kernel: pack a boolean block into bits along its last axis."""
    return np.packbits(block, axis=-1)


def line_counts(packed: np.ndarray) -> np.ndarray:
    """Kernel: number of set bits on each line of a packed block, shape ``(..., 1)``."""
    return np.bitwise_count(packed).sum(axis=-1, dtype=np.int64, keepdims=True)


def packed_mask(mask: da.Array) -> da.Array:
    """Bit-pack a boolean dask array along its last axis (1 bit per voxel, per block)."""
    chunks = (*mask.chunks[:-1], tuple(-(-c // 8) for c in mask.chunks[-1]))
    name = f"{MASK_TASK}-{tokenize(mask.name)}"  # the per-block tasks progress counts
    return da.map_blocks(pack_lines, mask, chunks=chunks, dtype=np.uint8, name=name)


def packed_line_counts(packed: da.Array) -> da.Array:
    """Per (line, last-axis block) counts of a packed mask: shape ``(*lead, n_blocks_last)``."""
    chunks = (*packed.chunks[:-1], (1,) * len(packed.chunks[-1]))
    return da.map_blocks(line_counts, packed, chunks=chunks, dtype=np.int64)
