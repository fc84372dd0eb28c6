"""The radix-select driver: exact order statistics of dask arrays, one compute per pass.

A :class:`_Selection` per array walks from a first histogram of the top key bits (or of all raw
words for 8/16-bit data) through refinement passes over the next digit within the candidate
prefixes to a final gather of the few remaining candidates; all arrays of one call share one
``dask.compute`` per pass.  The kernels live in :mod:`._kernels`, the keys in :mod:`._keys`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from numpy.typing import ArrayLike

from ..errors import InputError
from ._kernels import gather_kernel, refine_kernel, top_hist_kernel
from ._keys import UINT, from_keys, word_permutation

__all__ = ["STATS_TASK", "check_dtype", "check_shape", "order_statistics"]

STATS_TASK = "caredask-stats"  # name of the per-block tasks of every selection pass
_GATHER_LIMIT = 2**20  # gather candidates once at most this many elements remain
_MAX_BINS = 2**20  # upper bound on n_prefixes * 2**digit of a refinement histogram


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


def check_dtype(dtype: np.dtype, what: str) -> None:
    """Raise InputError unless ``dtype`` is bool, a 1..8-byte integer or float16/32/64."""
    ok = dtype.kind in "biu" and dtype.itemsize in UINT
    ok = ok or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))
    if not ok:
        raise InputError(
            f"{what} has dtype {dtype}, which is not supported: use bool, (u)int8..64 or "
            "float16/32/64 (cast with .astype(...) first)"
        )


def check_shape(x: Any, what: str) -> None:
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
    check_dtype(dtype, f"array {index}")
    check_shape(x, f"array {index}")
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
    utype = UINT[sel.dtype.itemsize]
    prefixes = sel.uniq.astype(utype)
    if sel.step in ("all", "gather"):
        lut = sel.lut if sel.step == "gather" else None
        length = sel.length if sel.step == "gather" else 0
        return flat.map_blocks(
            gather_kernel,
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
        kernel: Any = top_hist_kernel
        kwargs: dict[str, Any] = {"nan_check": sel.kind == "f" and sel.bits >= 32}
        nbins = (256 if sel.bits == 8 else 65536) + 1
    else:
        kernel = refine_kernel
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
    perm = word_permutation(sel.kind, 16)
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
        perm = word_permutation(sel.kind, top)
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
    found = from_keys(sel.prefix, sel.dtype)
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
