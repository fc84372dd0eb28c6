"""Order-preserving unsigned keys of the radix select (pure numpy helpers).

Floats become keys by flipping all bits if negative, else the sign bit; signed integers by
flipping the sign bit; unsigned integers are their own keys.  8/16-bit raw words are mapped to
key order by a permutation of the ``2**bits`` histogram bins instead of transforming the data.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = [
    "UINT",
    "from_keys",
    "native_flat",
    "to_keys",
    "top_words",
    "word_permutation",
]

LITTLE = sys.byteorder == "little"
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
"""The unsigned dtype of each item size: the dtype of the keys."""


def native_flat(block: np.ndarray) -> np.ndarray:
    """A block as a flat, contiguous, native-endian array (a view when it already is one)."""
    flat = np.ascontiguousarray(block).reshape(-1)
    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat


def top_words(flat: np.ndarray) -> np.ndarray:
    """Raw most significant 8 (1-byte types) or 16 bits of every element, as a view."""
    size = flat.dtype.itemsize
    if size == 1:
        return flat.view(np.uint8)
    words = flat.view(np.uint16)
    step = size // 2
    if step == 1:
        return words
    return words[step - 1 :: step] if LITTLE else words[::step]


def to_keys(vals: np.ndarray, kind: str) -> np.ndarray:
    """Order-preserving unsigned keys of a flat array (same itemsize, unsigned dtype)."""
    bits = vals.dtype.itemsize * 8
    utype = UINT[vals.dtype.itemsize]
    u = vals.view(utype)
    sign = utype(1 << (bits - 1))
    if kind == "f":
        return u ^ ((u >> utype(bits - 1)) * utype((1 << (bits - 1)) - 1) | sign)
    if kind == "i":
        return u ^ sign
    return u


def from_keys(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`to_keys`: keys (any unsigned dtype) back to values of ``dtype``."""
    bits = dtype.itemsize * 8
    utype = UINT[dtype.itemsize]
    k = keys.astype(utype)
    sign = utype(1 << (bits - 1))
    if dtype.kind == "f":
        u = k ^ ((utype(1) - (k >> utype(bits - 1))) * utype((1 << (bits - 1)) - 1) | sign)
    elif dtype.kind == "i":
        u = k ^ sign
    else:
        u = k
    return u.view(dtype)


def word_permutation(kind: str, bits: int) -> np.ndarray:
    """Key of every raw top word (8 or 16 bits): ``perm[raw] = key``."""
    raw = np.arange(1 << bits, dtype=np.int64)
    sign = 1 << (bits - 1)
    if kind == "f":
        return np.where(raw & sign, raw ^ ((1 << bits) - 1), raw ^ sign)
    if kind == "i":
        return raw ^ sign
    return raw
