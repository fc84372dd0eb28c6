"""Per-block kernels of the radix select: histograms of key digits and candidate gathering.

Each is a pure numpy function of one block, applied by :mod:`._radix` in ``map_blocks``-like
graph layers and tree-summed there.
"""

from __future__ import annotations

import numpy as np

from ._keys import native_flat, to_keys, top_words

__all__ = ["gather_kernel", "refine_kernel", "sliced_bincount", "top_hist_kernel"]


_BINCOUNT_SLICE = 2**19


def sliced_bincount(words: np.ndarray, nbins: int) -> np.ndarray:
    """``np.bincount(words, minlength=nbins)`` over slices of ``2**19`` elements, summed.

    ``np.bincount`` first casts its input to ``intp``; on a slice that cast stays in the CPU's
    cache, which makes the whole count about twice as fast on multi-MiB blocks.
    """
    out = np.bincount(words[:_BINCOUNT_SLICE], minlength=nbins)
    for start in range(_BINCOUNT_SLICE, words.size, _BINCOUNT_SLICE):
        out += np.bincount(words[start : start + _BINCOUNT_SLICE], minlength=nbins)
    return out


def top_hist_kernel(block: np.ndarray, *, nan_check: bool) -> np.ndarray:
    """Histogram of the raw top 8/16 bits of a block; last bin = number of NaNs removed.

    Returns shape ``(1, 2**8 + 1)`` for 1-byte types, else ``(1, 2**16 + 1)``, int64.
    """
    flat = native_flat(block)
    nans = 0
    if nan_check:
        isnan = np.isnan(flat)
        if isnan.any():
            nans = int(np.count_nonzero(isnan))
            flat = flat[~isnan]
    nbins = 256 if flat.dtype.itemsize == 1 else 65536
    out = np.empty((1, nbins + 1), np.int64)
    out[0, :nbins] = sliced_bincount(top_words(flat), nbins)
    out[0, nbins] = nans
    return out


def candidates(
    block: np.ndarray, kind: str, lut: np.ndarray | None, prefixes: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the non-NaN elements whose top ``length`` key bits are one of ``prefixes``.

    ``lut`` (bool, indexed by raw top word) pre-filters cheaply; ``length == 0`` keeps all.
    Returns the keys and, for each, its index into ``prefixes``.
    """
    flat = native_flat(block)
    if lut is not None:
        flat = flat[lut[top_words(flat)]]
    if kind == "f":
        flat = flat[~np.isnan(flat)]
    keys = to_keys(flat, kind)
    if length == 0:
        return keys, np.zeros(keys.shape, np.intp)
    pre = keys >> keys.dtype.type(keys.dtype.itemsize * 8 - length)
    pid = np.minimum(np.searchsorted(prefixes, pre), prefixes.size - 1)
    hit = prefixes[pid] == pre
    return keys[hit], pid[hit]


def refine_kernel(
    block: np.ndarray,
    *,
    kind: str,
    lut: np.ndarray,
    prefixes: np.ndarray,
    length: int,
    digit: int,
) -> np.ndarray:
    """Histogram ``(1, len(prefixes) * 2**digit)`` of the next ``digit`` key bits per prefix."""
    keys, pid = candidates(block, kind, lut, prefixes, length)
    utype = keys.dtype.type
    shift = keys.dtype.itemsize * 8 - length - digit
    low = ((keys >> utype(shift)) & utype((1 << digit) - 1)).astype(np.intp)
    hist = np.bincount((pid << digit) + low, minlength=prefixes.size << digit)
    return hist.astype(np.int64, copy=False)[None, :]


def gather_kernel(
    block: np.ndarray, *, kind: str, lut: np.ndarray | None, prefixes: np.ndarray, length: int
) -> np.ndarray:
    """Keys of a block's candidate elements (see :func:`candidates`), 1-D."""
    return candidates(block, kind, lut, prefixes, length)[0]
