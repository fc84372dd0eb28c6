"""Sub- and re-sampling along one axis, and csbdeep's rule for the subsample factor.

:func:`scale_down_up` is csbdeep's ``zoom`` down then up (exact when a block spans the axis);
:func:`scale_blockwise` applies it in one ``map_blocks``; :func:`adjust_subsample` is csbdeep's
choice of the factor and the cropped axis length.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import dask.array as da
import numpy as np

from ..errors import InputError
from .tiles import CHUNK_BYTES, float32_blocks

__all__ = ["adjust_subsample", "scale_blockwise", "scale_down_up"]


def scale_down_up(x: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """``zoom`` by ``1/factor`` (order 0) then by ``factor`` (order 1) along ``axis`` only.

    csbdeep's arithmetic (the axis moved to the front, scipy's defaults, UserWarnings
    silenced).  Each output line depends only on the same line of the input, so blocks that
    span the whole ``axis`` give exactly the whole-image result.
    """
    from scipy.ndimage import zoom

    a = np.moveaxis(x, axis, 0)
    f = np.ones(a.ndim)
    f[0] = factor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = zoom(zoom(a, 1 / f, order=0), f, order=1)
    if out.shape != a.shape:
        raise InputError(
            f"subsampling by {factor} changed the axis length {a.shape[0]} to {out.shape[0]}; "
            "use a subsample factor that divides the (cropped) length"
        )
    return np.moveaxis(out, 0, axis)


def _decimal_digits(v: float, n: int | None = None) -> tuple[int, int]:
    text = str(v if n is None else round(v, n))
    if "." not in text:
        raise InputError(f"subsample factor {v!r} must be a plain decimal number, e.g. 2.5")
    digits = text.split(".", 1)[1]
    return int(digits), len(digits)


def _crop_size(d: int, s: float, n: int, denominator: int) -> float:
    s_n = round(s, n)
    multiple = (np.floor(d / s_n) // denominator) * denominator
    return float(multiple * s_n)


def adjust_subsample(d: int, s: float, c: float) -> tuple[float, int]:
    """csbdeep's rule for the subsample factor and the cropped axis length.

    The cropped length is the largest multiple of ``s`` that is an integer; decimals of ``s``
    are dropped one by one while that loses more than the fraction ``c`` of ``d``.

    Returns
    -------
    (float, int)
        The (possibly rounded) factor and the cropped length, e.g. ``(2.7, 81)`` for
        ``d=100, s=2.7``.

    Raises
    ------
    InputError
        No crop within ``c`` works.
    """
    s = float(s)
    dec, n = _decimal_digits(s)
    denominator = Fraction(dec, 10**n).denominator
    while n > 0 and (d - _crop_size(d, s, n, denominator)) / d > c:
        n -= 1
        denominator = Fraction(_decimal_digits(s, n)[0], 10**n).denominator
    size = _crop_size(d, s, n, denominator)
    if size == 0 or (d - size) / d > c:
        raise InputError(
            f"subsample factor {s:g} too large (crop_threshold={c:g}) for an axis of length {d}: "
            "use a smaller factor or a larger crop_threshold"
        )
    return round(s, n), round(size)


def _zoom_chunk(block: np.ndarray, axis: int, factor: float) -> np.ndarray:
    return scale_down_up(block, axis, factor)


def scale_blockwise(x: da.Array, axis: int, factor: float) -> da.Array:
    """Lazy :func:`scale_down_up`: chunks span ``axis`` (rechunked if needed)."""
    if len(x.chunks[axis]) > 1:
        spec: dict[int, Any] = {axis: -1}
        others = [int(c) for a, c in enumerate(x.chunksize) if a != axis]
        if x.shape[axis] * int(np.prod(others)) * x.dtype.itemsize > CHUNK_BYTES:
            spec.update({a: "auto" for a in range(x.ndim) if a != axis})
        x = x.rechunk(spec, block_size_limit=CHUNK_BYTES)
    return da.map_blocks(
        _zoom_chunk,
        x,
        **float32_blocks(x.ndim),
        axis=axis,
        factor=factor,
    )
