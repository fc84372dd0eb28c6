"""Exact percentiles and order statistics of dask arrays, bit-identical to ``np.percentile``.

numpy's default ``method='linear'`` percentile needs only two order statistics per q (the
neighbours of the virtual index ``(n - 1) * q / 100``) and a lerp in numpy's own dtypes.  This
module finds those order statistics exactly and blockwise, without sorting or copying the whole
array, and replays numpy's arithmetic on them:

* 8/16-bit data (bool, u/int8, u/int16, float16): one pass of per-block ``np.bincount``
  histograms of the raw bits, tree-summed; the raw bins are permuted into an order-preserving
  key order afterwards, so no block is transformed or cast.
* 32/64-bit data: exact radix select on an order-preserving unsigned key (floats: flip all bits
  if negative, else the sign bit; signed integers: flip the sign bit).  Pass 1 histograms the top
  16 key bits, later passes histogram the next digit within the candidate prefixes, and as soon
  as few candidate elements remain a final pass gathers them.  Small arrays are gathered at once.
* NaN sorts last, as in ``np.sort``: NaNs are counted in pass 1 and excluded from the selection.

All arrays of one :func:`order_statistics` call share one ``dask.compute`` per pass.  Known
differences from numpy: ``-0.0`` and ``0.0`` are ordered (``-0.0`` first) while numpy's
introselect may return either, so a zero result can differ in sign only (``np.array_equal``
still holds); an empty reduction raises :class:`~caredask.errors.InputError` where numpy raises
``IndexError``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import InputError
from ._radix import STATS_TASK, _order_statistics, check_dtype, check_shape, order_statistics

__all__ = [
    "STATS_TASK",
    "order_statistics",
    "percentile",
    "percentile_from_order_statistics",
    "percentile_ranks",
]


# ---------------------------------------------------------------- numpy's percentile arithmetic


def _fraction(q: Any) -> np.ndarray:
    """``q / 100`` exactly as numpy computes it (dtype included), validated."""
    qf = np.asanyarray(np.true_divide(q, 100, out=...))
    if qf.ndim > 2:
        raise InputError(f"q must be a scalar or 1-d sequence of percentiles; got shape {qf.shape}")
    if (qf.size == 0 and qf.ndim != 1) or not np.all((qf >= 0) & (qf <= 1)):
        raise InputError(f"percentiles q must lie in [0, 100]; got {q!r}")
    return qf


def _virtual_index(n: int, q: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's virtual index and its lower/upper neighbour indices (-1 = last element)."""
    vi = np.asanyarray((n - 1) * _fraction(q))
    prev = np.floor(vi, out=...)
    nxt = np.add(prev, 1, out=...)
    above = vi >= n - 1
    prev[above] = -1
    nxt[above] = -1
    below = vi < 0
    prev[below] = 0
    nxt[below] = 0
    return vi, prev.astype(np.intp), nxt.astype(np.intp)


def percentile_ranks(n: int, q: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The 0-based ranks whose values numpy interpolates between for ``np.percentile``.

    Parameters
    ----------
    n : int
        Number of elements reduced (at least 1).
    q : array_like of float
        Percentiles in ``[0, 100]``, as passed to ``np.percentile``.

    Returns
    -------
    lo, hi : numpy.ndarray of intp
        Shaped like ``q``: ``floor((n - 1) * q / 100)`` and one more, both clamped to ``n - 1``
        (numpy's own float arithmetic).

    Raises
    ------
    InputError
        ``n < 1`` or ``q`` outside ``[0, 100]``.
    """
    if n < 1:
        raise InputError(f"cannot take percentiles of an empty array (n={n}); need n >= 1")
    _, prev, nxt = _virtual_index(n, q)
    return np.where(prev < 0, n - 1, prev), np.where(nxt < 0, n - 1, nxt)


def _lerp(a: Any, b: Any, t: Any) -> Any:
    """numpy's ``_lerp``: ``a + (b-a)*t``, or ``b - (b-a)*(1-t)`` where ``t >= 0.5``."""
    diff = b - a
    res = np.add(a, diff * t, out=...)
    np.subtract(b, diff * (1 - t), out=res, where=t >= 0.5, casting="unsafe", dtype=type(res.dtype))
    return res[()] if res.ndim == 0 else res


def percentile_from_order_statistics(
    lo_vals: ArrayLike,
    hi_vals: ArrayLike,
    n: int,
    q: ArrayLike,
    *,
    dtype: DTypeLike,
    weak_q: bool,
    has_nan: ArrayLike = False,
) -> Any:
    """numpy's linear-method percentile from the neighbour order statistics.

    Parameters
    ----------
    lo_vals, hi_vals : array_like
        Values at the ranks of :func:`percentile_ranks` ``(n, q)``, shape ``q.shape + S`` where
        ``S`` is the shape of the kept (not reduced) axes (``()`` for ``axis=None``).
    n : int
        Number of elements reduced per slice.
    q : array_like
        The percentiles exactly as the caller would pass them to ``np.percentile``.
    dtype : dtype
        The dtype numpy would see (the array's; e.g. float32 when numpy is called on
        ``y.astype(np.float32)``: the order statistics of any integer or float array cast with a
        monotone cast are the cast order statistics).
    weak_q : bool
        True when ``q`` is a Python int or float (numpy then lerps in weak precision, e.g. in
        float32 for float32 data).
    has_nan : array_like of bool, optional
        Per slice (shape ``S``), whether the data contain NaN; such results become NaN as in
        numpy (see :func:`order_statistics`: rank ``n - 1`` is NaN exactly then).

    Returns
    -------
    numpy.ndarray or numpy scalar
        What ``np.percentile(..., keepdims=False)`` returns, value, dtype and type.  The
        difference ``b - a`` is taken in ``dtype`` like numpy, so int16 (and other signed types)
        can overflow exactly as in numpy (``np.percentile(int16[-20000, 20000], [50])`` is
        32768).
    """
    dt = np.dtype(dtype)
    vi, prev, _ = _virtual_index(n, q)
    a = np.asarray(lo_vals, dtype=dt)
    b = np.asarray(hi_vals, dtype=dt)
    gamma: Any = np.asanyarray(np.asanyarray(vi - prev), dtype=vi.dtype)
    if weak_q:
        gamma = float(gamma)
    else:
        gamma = gamma.reshape(vi.shape + (1,) * (a.ndim - vi.ndim))
    if a.ndim == 0:
        a, b = a[()], b[()]
    result = _lerp(a, b, gamma)
    nan = np.asarray(has_nan, dtype=bool)
    if dt.kind == "f" and nan.any():
        if np.ndim(result) == 0:
            return np.asarray(np.nan, dt)[()]
        np.copyto(result, np.asarray(np.nan, dt), where=nan)
    return result


# ---------------------------------------------------------------- np.percentile twin


def _normalize_axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """numpy's axis normalisation, raising InputError."""
    if axis is None:
        return None
    items = axis if isinstance(axis, tuple | list) else (axis,)
    out = []
    for ax in items:
        try:
            i = operator.index(ax)
        except TypeError:
            raise InputError(
                f"axis must be None, an int or a tuple of ints; got {axis!r}"
            ) from None
        if not -ndim <= i < ndim:
            raise InputError(
                f"axis {i} is out of range for an array with {ndim} dimensions: valid axes are "
                f"{-ndim}..{ndim - 1}"
            )
        out.append(i % ndim)
    if len(set(out)) != len(out):
        raise InputError(f"axis {axis!r} repeats an axis; give each axis at most once")
    return tuple(out)


def _slices(x: Any, kept: list[int]) -> list[Any]:
    """One sub-array over the reduced axes per index of the kept axes (C order)."""
    if not kept:
        return [x]
    front = list(range(len(kept)))
    xt = da.moveaxis(x, kept, front) if isinstance(x, da.Array) else np.moveaxis(x, kept, front)
    return [xt[idx] for idx in np.ndindex(*xt.shape[: len(kept)])]


def _stack(parts: list[np.ndarray], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Per-slice value vectors stacked into ``q.shape + kept_shape``."""
    if not parts:
        return np.empty(shape, dtype)
    return np.stack(parts, axis=-1).reshape(shape)


def percentile(a: Any, q: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Exact twin of ``np.percentile(a, q, axis=axis, keepdims=keepdims)`` for dask arrays.

    Parameters
    ----------
    a : dask array, numpy array or array_like
        The data; dtype bool (numpy's TypeError), (u)int8..64 or float16/32/64.
    q : float or array_like of float
        Percentiles in ``[0, 100]``; a Python int/float is "weak" exactly as in numpy.
    axis : None, int or tuple of int, optional
        Axes to reduce; the others are kept (each kept index is one selection).
    keepdims : bool, optional
        Keep the reduced axes with size 1.

    Returns
    -------
    numpy.ndarray or numpy scalar
        Equal to numpy's result in value (NaN where numpy gives NaN), dtype, shape and type.

    Raises
    ------
    InputError
        q outside ``[0, 100]``, a bad axis, an empty reduction or an unsupported dtype.

    Notes
    -----
    Computes eagerly (one ``dask.compute`` per selection pass); never copies or sorts the
    whole array.  Zero results may differ from numpy in the sign of zero only.
    """
    x = a if isinstance(a, da.Array) else np.asarray(a)
    dtype = np.dtype(x.dtype)
    check_dtype(dtype, "percentile input")
    check_shape(x, "percentile input")
    weak_q = type(q) in (int, float)
    qshape = _fraction(q).shape
    axes = _normalize_axes(axis, x.ndim)
    reduced = list(range(x.ndim)) if axes is None else list(axes)
    kept = [d for d in range(x.ndim) if d not in reduced]
    kept_shape = tuple(int(x.shape[d]) for d in kept)
    n = math.prod(x.shape[d] for d in reduced)
    if not n >= 1:
        raise InputError(f"cannot take a percentile over {n} elements (array shape {x.shape})")
    _lerp(np.zeros(1, dtype), np.zeros(1, dtype), 0.5)  # numpy's own TypeError for bool
    lo, hi = percentile_ranks(int(n), q)
    ranks = np.concatenate([lo.ravel(), hi.ravel()])
    slices = _slices(x, kept)
    vals, nans, _ = _order_statistics(slices, [ranks] * len(slices))
    shape = qshape + kept_shape
    result = percentile_from_order_statistics(
        _stack([v[: lo.size] for v in vals], shape, dtype),
        _stack([v[lo.size :] for v in vals], shape, dtype),
        int(n),
        q,
        dtype=dtype,
        weak_q=weak_q,
        has_nan=np.array(nans, dtype=bool).reshape(kept_shape) if nans else False,
    )
    if keepdims:
        index = tuple(np.newaxis if i in reduced else slice(None) for i in range(x.ndim))
        result = result[(Ellipsis, *index)]
    return result
