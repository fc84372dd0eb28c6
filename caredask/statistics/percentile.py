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
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from numpy.typing import ArrayLike, DTypeLike

from caredask.errors import InputError

__all__ = [
    "order_statistics",
    "percentile",
    "percentile_from_order_statistics",
    "percentile_ranks",
]

STATS_TASK = "caredask-stats"  # name of the per-block tasks of every selection pass
_GATHER_LIMIT = 2**20  # gather candidates once at most this many elements remain
_MAX_BINS = 2**20  # upper bound on n_prefixes * 2**digit of a refinement histogram
_LITTLE = sys.byteorder == "little"
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


# ---------------------------------------------------------------- keys (pure numpy helpers)


def _native_flat(block: np.ndarray) -> np.ndarray:
    """A block as a flat, contiguous, native-endian array (a view when it already is one)."""
    flat = np.ascontiguousarray(block).reshape(-1)
    if not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat


def _top_words(flat: np.ndarray) -> np.ndarray:
    """Raw most significant 8 (1-byte types) or 16 bits of every element, as a view."""
    size = flat.dtype.itemsize
    if size == 1:
        return flat.view(np.uint8)
    words = flat.view(np.uint16)
    step = size // 2
    if step == 1:
        return words
    return words[step - 1 :: step] if _LITTLE else words[::step]


def _to_keys(vals: np.ndarray, kind: str) -> np.ndarray:
    """Order-preserving unsigned keys of a flat array (same itemsize, unsigned dtype)."""
    bits = vals.dtype.itemsize * 8
    utype = _UINT[vals.dtype.itemsize]
    u = vals.view(utype)
    sign = utype(1 << (bits - 1))
    if kind == "f":
        return u ^ ((u >> utype(bits - 1)) * utype((1 << (bits - 1)) - 1) | sign)
    if kind == "i":
        return u ^ sign
    return u


def _from_keys(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`_to_keys`: keys (any unsigned dtype) back to values of ``dtype``."""
    bits = dtype.itemsize * 8
    utype = _UINT[dtype.itemsize]
    k = keys.astype(utype)
    sign = utype(1 << (bits - 1))
    if dtype.kind == "f":
        u = k ^ ((utype(1) - (k >> utype(bits - 1))) * utype((1 << (bits - 1)) - 1) | sign)
    elif dtype.kind == "i":
        u = k ^ sign
    else:
        u = k
    return u.view(dtype)


def _word_permutation(kind: str, bits: int) -> np.ndarray:
    """Key of every raw top word (8 or 16 bits): ``perm[raw] = key``."""
    raw = np.arange(1 << bits, dtype=np.int64)
    sign = 1 << (bits - 1)
    if kind == "f":
        return np.where(raw & sign, raw ^ ((1 << bits) - 1), raw ^ sign)
    if kind == "i":
        return raw ^ sign
    return raw


# ---------------------------------------------------------------- per-block kernels


def _top_hist_kernel(block: np.ndarray, *, nan_check: bool) -> np.ndarray:
    """Histogram of the raw top 8/16 bits of a block; last bin = number of NaNs removed.

    Returns shape ``(1, 2**8 + 1)`` for 1-byte types, else ``(1, 2**16 + 1)``, int64.
    """
    flat = _native_flat(block)
    nans = 0
    if nan_check:
        isnan = np.isnan(flat)
        if isnan.any():
            nans = int(np.count_nonzero(isnan))
            flat = flat[~isnan]
    nbins = 256 if flat.dtype.itemsize == 1 else 65536
    out = np.empty((1, nbins + 1), np.int64)
    out[0, :nbins] = np.bincount(_top_words(flat), minlength=nbins)
    out[0, nbins] = nans
    return out


def _candidates(
    block: np.ndarray, kind: str, lut: np.ndarray | None, prefixes: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys of the non-NaN elements whose top ``length`` key bits are one of ``prefixes``.

    ``lut`` (bool, indexed by raw top word) pre-filters cheaply; ``length == 0`` keeps all.
    Returns the keys and, for each, its index into ``prefixes``.
    """
    flat = _native_flat(block)
    if lut is not None:
        flat = flat[lut[_top_words(flat)]]
    if kind == "f":
        flat = flat[~np.isnan(flat)]
    keys = _to_keys(flat, kind)
    if length == 0:
        return keys, np.zeros(keys.shape, np.intp)
    pre = keys >> keys.dtype.type(keys.dtype.itemsize * 8 - length)
    pid = np.minimum(np.searchsorted(prefixes, pre), prefixes.size - 1)
    hit = prefixes[pid] == pre
    return keys[hit], pid[hit]


def _refine_kernel(
    block: np.ndarray,
    *,
    kind: str,
    lut: np.ndarray,
    prefixes: np.ndarray,
    length: int,
    digit: int,
) -> np.ndarray:
    """Histogram ``(1, len(prefixes) * 2**digit)`` of the next ``digit`` key bits per prefix."""
    keys, pid = _candidates(block, kind, lut, prefixes, length)
    utype = keys.dtype.type
    shift = keys.dtype.itemsize * 8 - length - digit
    low = ((keys >> utype(shift)) & utype((1 << digit) - 1)).astype(np.intp)
    hist = np.bincount((pid << digit) + low, minlength=prefixes.size << digit)
    return hist.astype(np.int64, copy=False)[None, :]


def _gather_kernel(
    block: np.ndarray, *, kind: str, lut: np.ndarray | None, prefixes: np.ndarray, length: int
) -> np.ndarray:
    """Keys of a block's candidate elements (see :func:`_candidates`), 1-D."""
    return _candidates(block, kind, lut, prefixes, length)[0]


# ---------------------------------------------------------------- radix-select driver


@dataclass
class _Selection:
    """State of the exact selection of some ranks of one flattened array."""

    flat: Any  # da.Array, 1-D
    dtype: np.dtype
    n: int
    ranks: np.ndarray  # unique sorted requested ranks
    step: str  # "top" | "all" | "refine" | "gather" | "done"
    nan_count: int = 0
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    prefix: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    resid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    length: int = 0
    digit: int = 0
    uniq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    lut: np.ndarray | None = None

    @property
    def bits(self) -> int:
        return self.dtype.itemsize * 8

    @property
    def kind(self) -> str:
        return "u" if self.dtype.kind == "b" else self.dtype.kind


def _check_dtype(dtype: np.dtype, what: str) -> None:
    """Raise InputError unless ``dtype`` is bool, a 1..8-byte integer or float16/32/64."""
    ok = dtype.kind in "biu" and dtype.itemsize in _UINT
    ok = ok or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))
    if not ok:
        raise InputError(
            f"{what} has dtype {dtype}, which is not supported: use bool, (u)int8..64 or "
            "float16/32/64 (cast with .astype(...) first)"
        )


def _check_shape(x: Any, what: str) -> None:
    """Raise InputError if a dask array has unknown chunk sizes."""
    if any(math.isnan(s) for s in x.shape):
        raise InputError(
            f"{what} has unknown chunk sizes {x.shape}: call .compute_chunk_sizes() first"
        )


def _as_flat_dask(x: Any) -> Any:
    """A 1-D dask view of ``x``: blocks flattened in place (no rechunk, no whole copy)."""
    if not isinstance(x, da.Array):
        arr = np.asarray(x)
        chunks = ("auto",) + (-1,) * (arr.ndim - 1) if arr.ndim else ()
        x = da.from_array(arr, chunks=chunks)
    x = da.squeeze(x)  # blockwise; reshape_blockwise mishandles some size-1 axes
    if x.ndim == 0:
        return x.reshape(1)
    return x if x.ndim == 1 else da.reshape_blockwise(x, (-1,))


def _start(x: Any, ranks: ArrayLike, index: int, gather_limit: int) -> _Selection:
    """Validate one array and its ranks and set up its first pass."""
    dtype = np.dtype(x.dtype).newbyteorder("=")
    _check_dtype(dtype, f"array {index}")
    _check_shape(x, f"array {index}")
    n = math.prod(int(s) for s in x.shape)
    r = np.asarray(ranks)
    if r.size and (r.dtype.kind not in "iu" or r.min() < 0 or r.max() >= n):
        raise InputError(
            f"ranks of array {index} must be integers in [0, {n - 1}] (0-based, array of "
            f"{n} elements); got {r.tolist()!r}"
        )
    first = "all" if dtype.itemsize >= 4 and n <= gather_limit else "top"
    uniq = np.unique(r.astype(np.int64).ravel())
    return _Selection(_as_flat_dask(x), dtype, n, uniq, first if uniq.size else "done")


def _graph(sel: _Selection, split_every: int) -> Any:
    """The dask collection computing ``sel``'s next pass."""
    flat = sel.flat
    nblocks = flat.numblocks[0]
    utype = _UINT[sel.dtype.itemsize]
    prefixes = sel.uniq.astype(utype)
    if sel.step in ("all", "gather"):
        lut = sel.lut if sel.step == "gather" else None
        length = sel.length if sel.step == "gather" else 0
        return flat.map_blocks(
            _gather_kernel,
            name=f"{STATS_TASK}-{tokenize(flat.name, sel.step, lut, prefixes, length)}",
            chunks=((np.nan,) * nblocks,),
            dtype=utype,
            meta=np.empty(0, utype),
            kind=sel.kind,
            lut=lut,
            prefixes=prefixes,
            length=length,
        )
    if sel.step == "top":
        kernel: Any = _top_hist_kernel
        kwargs: dict[str, Any] = {"nan_check": sel.kind == "f" and sel.bits >= 32}
        nbins = (256 if sel.bits == 8 else 65536) + 1
    else:
        kernel = _refine_kernel
        kwargs = {"kind": sel.kind, "lut": sel.lut, "prefixes": prefixes, "length": sel.length}
        kwargs["digit"] = sel.digit
        nbins = sel.uniq.size << sel.digit
    parts = flat.map_blocks(
        kernel,
        chunks=((1,) * nblocks, (nbins,)),
        new_axis=1,
        dtype=np.int64,
        meta=np.empty((0, 0), np.int64),
        **kwargs,
    )
    # Named reduction: its chunk tasks (fused with the kernels) are what progress counts.
    return da.reduction(
        parts,
        chunk=np.sum,
        aggregate=np.sum,
        axis=0,
        dtype=np.int64,
        split_every=split_every,
        name=STATS_TASK,
        concatenate=True,
    )


def _descend(sel: _Selection, hist: np.ndarray, digit: int) -> None:
    """Move every target one digit down, given the histogram rows of ``sel.uniq``."""
    flat = hist.ravel()
    cum = np.cumsum(flat)
    base = np.searchsorted(sel.uniq, sel.prefix).astype(np.int64) << digit
    pos = sel.resid + np.where(base > 0, cum[np.maximum(base - 1, 0)], 0)
    gbin = np.searchsorted(cum, pos, side="right")
    if np.any(gbin >= flat.size) or np.any(gbin >= base + (1 << digit)):
        raise InputError(
            f"the array of dtype {sel.dtype} changed between passes of the exact selection; "
            "make the source deterministic (or persist it) before taking percentiles"
        )
    sel.resid = pos - np.where(gbin > 0, cum[np.maximum(gbin - 1, 0)], 0)
    sel.count = flat[gbin]
    sel.prefix = (sel.prefix << np.uint64(digit)) | (gbin - base).astype(np.uint64)
    sel.length += digit


def _plan(sel: _Selection, gather_limit: int, max_bins: int) -> None:
    """Choose ``sel``'s next pass: done, gather the candidates, or refine one more digit."""
    if sel.length == sel.bits or sel.targets.size == 0:
        sel.step = "done"
        return
    sel.uniq, first = np.unique(sel.prefix, return_index=True)
    top16 = (sel.uniq >> np.uint64(sel.length - 16)).astype(np.int64)
    perm = _word_permutation(sel.kind, 16)
    lut = np.zeros(65536, bool)
    lut[np.isin(perm, top16)] = True
    sel.lut = lut
    if int(sel.count[first].sum()) <= gather_limit:
        sel.step = "gather"
        return
    room = max(max_bins // sel.uniq.size, 2)
    sel.digit = min(sel.bits - sel.length, room.bit_length() - 1)
    sel.step = "refine"


def _set_targets(sel: _Selection) -> None:
    """Targets are the requested ranks below the NaNs (NaN ranks need no selection)."""
    sel.targets = sel.ranks[sel.ranks < sel.n - sel.nan_count]
    sel.prefix = np.zeros(sel.targets.size, np.uint64)
    sel.resid = sel.targets.copy()


def _advance(sel: _Selection, result: np.ndarray, gather_limit: int, max_bins: int) -> None:
    """Update ``sel`` with the result of its pass and plan the next one."""
    if sel.step == "top":
        top = 8 if sel.bits == 8 else 16
        perm = _word_permutation(sel.kind, top)
        raw = result[:-1].copy()
        sel.nan_count = int(result[-1])
        if sel.dtype == np.float16:
            words = np.arange(raw.size)
            nan_bins = ((words & 0x7C00) == 0x7C00) & ((words & 0x03FF) != 0)
            sel.nan_count += int(raw[nan_bins].sum())
            raw[nan_bins] = 0
        hist = np.zeros_like(raw)
        hist[perm] = raw
        _set_targets(sel)
        sel.uniq = np.zeros(1, np.uint64)
        _descend(sel, hist[None, :], top)
    elif sel.step == "refine":
        _descend(sel, result.reshape(sel.uniq.size, -1), sel.digit)
    else:
        keys = np.sort(np.asarray(result).astype(np.uint64))
        if sel.step == "all":
            sel.nan_count = sel.n - keys.size
            _set_targets(sel)
            pos = sel.resid
        else:
            shift = np.uint64(sel.bits - sel.length)
            pos = np.searchsorted(keys, sel.prefix << shift) + sel.resid
        sel.prefix = keys[pos]
        sel.length = sel.bits
    _plan(sel, gather_limit, max_bins)


def _values(sel: _Selection, ranks: ArrayLike) -> np.ndarray:
    """The requested order statistics, shaped like ``ranks``; ranks of NaNs give NaN."""
    r = np.asarray(ranks).astype(np.int64)
    out = np.zeros(r.shape, sel.dtype)
    valid = r < sel.n - sel.nan_count
    if not valid.all():
        out[~valid] = np.nan
    found = _from_keys(sel.prefix, sel.dtype)
    out[valid] = found[np.searchsorted(sel.targets, r[valid])]
    return out


def _order_statistics(
    arrays: Sequence[Any],
    ranks: Sequence[ArrayLike],
    split_every: int = 16,
    gather_limit: int | None = None,
    max_bins: int | None = None,
    extra: Sequence[Any] = (),
) -> tuple[list[np.ndarray], list[int], list[Any]]:
    """:func:`order_statistics` that also returns each array's NaN count.

    ``extra`` collections are computed with the first pass (sharing its reads); their results
    come third.
    """
    if len(arrays) != len(ranks):
        raise InputError(
            f"order_statistics needs one ranks entry per array; got {len(arrays)} arrays and "
            f"{len(ranks)} ranks entries"
        )
    if split_every < 2:
        raise InputError(f"split_every must be >= 2; got {split_every}")
    glimit = _GATHER_LIMIT if gather_limit is None else gather_limit
    mbins = _MAX_BINS if max_bins is None else max_bins
    sels = [_start(x, r, i, glimit) for i, (x, r) in enumerate(zip(arrays, ranks, strict=True))]
    active = [s for s in sels if s.step != "done"]
    first, extra_out = list(extra), list[Any]()
    while active or first:
        results = list(dask.compute(*[_graph(s, split_every) for s in active], *first))
        results, extra_out, first = results[: len(active)], extra_out or results[len(active) :], []
        for sel, res in zip(active, results, strict=True):
            _advance(sel, np.asarray(res), glimit, mbins)
        active = [s for s in active if s.step != "done"]
    values = [_values(s, r) for s, r in zip(sels, ranks, strict=True)]
    return values, [s.nan_count for s in sels], extra_out


def order_statistics(
    arrays: Sequence[da.Array | np.ndarray],
    ranks: Sequence[ArrayLike],
    *,
    split_every: int = 16,
) -> list[np.ndarray]:
    """Exact order statistics of several (dask) arrays, blockwise, one compute per pass.

    Parameters
    ----------
    arrays : sequence of dask or numpy arrays
        Each is taken flattened; dtype bool, (u)int8..64 or float16/32/64.
    ranks : sequence of array_like of int
        ``ranks[i]``: 0-based ranks into ``np.sort(arrays[i].ravel())`` (any number, any order,
        duplicates allowed).
    split_every : int, optional
        Fan-in of the tree sum of the per-block histograms.

    Returns
    -------
    list of numpy.ndarray
        ``out[i][j] == np.sort(arrays[i].ravel())[ranks[i][j]]`` in ``arrays[i].dtype``, shaped
        like ``ranks[i]``.  NaNs sort last, so a rank at or above ``n - n_nan`` gives NaN; in
        particular the rank ``n - 1`` is NaN exactly when the array holds a NaN.  ``-0.0`` sorts
        before ``0.0``.

    Raises
    ------
    InputError
        Unsupported dtype, unknown chunk sizes, a rank outside ``[0, n - 1]`` or mismatched
        lengths.

    Notes
    -----
    All arrays are processed together, with one ``dask.compute`` per pass (shared reads).
    8/16-bit types take one histogram pass; 32/64-bit types take a radix select (2 passes for
    most 32-bit data, 3 for most 64-bit data) or, for arrays of at most 2**20 elements, one
    gather pass.
    """
    return _order_statistics(arrays, ranks, split_every)[0]


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
    _check_dtype(dtype, "percentile input")
    _check_shape(x, "percentile input")
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
