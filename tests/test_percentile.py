"""caredask.statistics.percentile against np.percentile / np.sort on random data and chunkings."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caredask.errors import InputError
from caredask.statistics import _radix as radix
from caredask.statistics.percentile import (
    order_statistics,
    percentile,
    percentile_from_order_statistics,
    percentile_ranks,
)
from tests.strategies import irregular_chunks

DTYPES = ["u1", "i1", "u2", "i2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"]
DISTS = ["uniform", "skewed", "few", "constant", "extreme"]
NICE_Q = [0.0, 100.0, 50.0, 99.9, 0.1, 1.0, 3.0, 99.8, 33.3, 100 / 3]
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- data generation


def _extremes(dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        info = np.finfo(dtype)
        vals = [0.0, -0.0, np.inf, -np.inf, info.max, info.min, info.tiny, -info.tiny, 1.0, -1.0]
        return np.array(vals, dtype)
    iinfo = np.iinfo(dtype)
    return np.array([iinfo.min, iinfo.max, 0, 1, iinfo.max - 1, iinfo.min + 1], dtype)


def _make(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...], dist: str) -> Any:
    size = int(np.prod(shape))
    if dist == "extreme":
        return rng.choice(_extremes(dtype), size).reshape(shape)
    if dist == "constant":
        return np.full(shape, rng.choice(_extremes(dtype)), dtype)
    if dist == "few":
        vals = rng.integers(-3, 4, size)
    elif dist == "skewed":  # heavy-tailed, mostly positive
        vals = rng.lognormal(0, 4, size) * np.where(rng.random(size) < 0.1, -1, 1)
    elif dtype.kind == "f":
        vals = rng.standard_normal(size) * 10.0 ** rng.uniform(-5, 5)
    else:
        iinfo = np.iinfo(dtype)
        return rng.integers(iinfo.min, iinfo.max, size, dtype=dtype, endpoint=True).reshape(shape)
    if dtype.kind in "iu":
        iinfo = np.iinfo(dtype)
        vals = np.clip(vals, iinfo.min, iinfo.max)
    with np.errstate(over="ignore"):
        return vals.astype(dtype).reshape(shape)


def _inject_specials(rng: np.random.Generator, a: np.ndarray) -> None:
    """Put NaN, +-inf and +-0 at random places of a float array."""
    if a.dtype.kind != "f" or a.size == 0:
        return
    flat = a.reshape(-1)
    for value in (np.nan, np.inf, -np.inf, 0.0, -0.0):
        if rng.random() < 0.35:
            flat[rng.integers(0, flat.size, rng.integers(1, 3))] = value


@st.composite
def _arrays(draw: st.DrawFn, max_ndim: int = 3, max_side: int = 7) -> tuple[np.ndarray, Any]:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=max_ndim)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = _make(rng, dtype, shape, draw(st.sampled_from(DISTS)))
    if draw(st.booleans()):
        _inject_specials(rng, a)
    chunks = draw(irregular_chunks(shape))
    return a, da.from_array(a, chunks=chunks)


_q_value = st.one_of(st.sampled_from(NICE_Q), st.floats(0, 100), st.integers(0, 100))
_q = st.one_of(
    _q_value,
    st.lists(_q_value, max_size=5),
    st.lists(_q_value, min_size=1, max_size=4).map(np.array),
    st.lists(_q_value, min_size=1, max_size=4).map(lambda v: np.array(v, np.float32)),
    _q_value.map(np.float64),
    _q_value.map(np.float32),
)


@st.composite
def _axis(draw: st.DrawFn, ndim: int) -> Any:
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.sets(st.integers(0, ndim - 1)))
    return tuple(ax - ndim if draw(st.booleans()) else ax for ax in sorted(axes))


@contextmanager
def _limits(gather_limit: int, max_bins: int) -> Iterator[None]:
    """Small selection limits, to force multi-pass radix selects on small test arrays."""
    with (
        mock.patch.object(radix, "_GATHER_LIMIT", gather_limit),
        mock.patch.object(radix, "_MAX_BINS", max_bins),
    ):
        yield


_limit_choices = st.tuples(st.sampled_from([0, 5, 2**20]), st.sampled_from([256, 2**20]))


def _numpy_percentile(a: np.ndarray, q: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.percentile(a, q, **kwargs)


def _ours(a: Any, q: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return percentile(a, q, **kwargs)


def _assert_same(result: Any, expected: Any) -> None:
    assert type(result) is type(expected), (type(result), type(expected))
    assert np.asarray(result).dtype == np.asarray(expected).dtype
    assert np.shape(result) == np.shape(expected)
    assert np.array_equal(result, expected, equal_nan=True), (result, expected)


# ---------------------------------------------------------------- percentile


@HYP
@given(data=st.data(), arrays=_arrays(), q=_q, keepdims=st.booleans(), limits=_limit_choices)
def test_percentile_matches_numpy(
    data: st.DataObject, arrays: Any, q: Any, keepdims: bool, limits: tuple[int, int]
) -> None:
    a, x = arrays
    axis = data.draw(_axis(a.ndim))
    expected = _numpy_percentile(a, q, axis=axis, keepdims=keepdims)
    with _limits(*limits), dask.config.set(scheduler="synchronous"):
        result = _ours(x, q, axis=axis, keepdims=keepdims)
    _assert_same(result, expected)


@settings(max_examples=25, deadline=None)
@given(arrays=_arrays(max_ndim=2), q=_q)
def test_percentile_of_numpy_input(arrays: Any, q: Any) -> None:
    a, _ = arrays
    _assert_same(_ours(a, q), _numpy_percentile(a, q))


@pytest.mark.parametrize(
    ("values", "dtype", "q"),
    [
        ([-20000, 20000], np.int16, [50]),  # numpy overflows in b - a: 32768
        ([-20000, 20000], np.int16, 50),
        ([-(2**31), 2**31 - 1], np.int32, [25.0, 75.0]),
        ([-(2**63), 2**63 - 1], np.int64, [10.0]),
        ([np.inf], np.float64, 50),  # inf - inf -> NaN, as in numpy
        ([7], np.uint8, [0, 50, 100]),
        ([1.0, np.nan, 3.0], np.float32, np.float64(50)),  # NaN result keeps float32
        ([1.0, np.nan, 3.0], np.float32, [0, 100]),
        ([-0.0, 0.0, -0.0], np.float32, 50),
        ([5, 5, 5, 5], np.uint16, 100),
        ([3, 1, 2], np.uint32, 0),
    ],
)
def test_percentile_edge_cases(values: list[Any], dtype: Any, q: Any) -> None:
    a = np.array(values, dtype)
    expected = _numpy_percentile(a, q)
    for limits in [(2**20, 2**20), (0, 256)]:
        with _limits(*limits):
            _assert_same(_ours(da.from_array(a, chunks=1), q), expected)
    if dtype == np.int16:
        assert np.asarray(expected).ravel()[0] == 32768


def test_percentile_zero_d_and_bool() -> None:
    _assert_same(_ours(np.float32(3.5), 50), _numpy_percentile(np.float32(3.5), 50))
    _assert_same(_ours(np.uint16(9), [5.0]), _numpy_percentile(np.uint16(9), [5.0]))
    with pytest.raises(TypeError, match="boolean subtract"):
        percentile(da.ones(4, dtype=bool, chunks=2), 50)


def test_percentile_csbdeep_normalization_call() -> None:
    rng = np.random.default_rng(7)
    x = (100 + rng.poisson(30, (6, 40, 30, 2)) * rng.integers(1, 40, (6, 40, 30, 2))).astype(
        np.uint16
    )
    pmins = tuple(rng.uniform(1, 3, 9))
    pmaxs = tuple(rng.uniform(99.5, 99.9, 9))
    dx = da.from_array(x, chunks=(4, 17, 13, 1))
    for p in (pmins, pmaxs):
        for axis in (None, (0, 1, 2)):
            expected = np.percentile(x, p, axis=axis, keepdims=True)
            _assert_same(percentile(dx, p, axis=axis, keepdims=True), expected)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int16, np.int32, np.float64])
def test_filter_threshold_on_float32_cast(dtype: Any) -> None:
    """The lead's use: order statistics of y, cast to float32, lerped weakly as numpy does."""
    rng = np.random.default_rng(3)
    top = 255 if dtype == np.uint8 else 30000
    y = rng.lognormal(5, 1.5, (23, 31, 17)).clip(0, top).astype(dtype)
    n = y.size
    dy = da.from_array(y, chunks=(5, 11, 9))
    for q in (99.9, 50, 100, 0, 37.5):
        lo, hi = percentile_ranks(n, q)
        (vals,) = order_statistics([dy], [np.concatenate([lo.ravel(), hi.ravel()])])
        vals32 = vals.astype(np.float32)
        result = percentile_from_order_statistics(
            vals32[: lo.size].reshape(lo.shape),
            vals32[lo.size :].reshape(hi.shape),
            n,
            q,
            dtype=np.float32,
            weak_q=True,
        )
        _assert_same(result, np.percentile(y.astype(np.float32), q))
        assert type(result) is np.float32


def test_percentile_ranks() -> None:
    assert [r.tolist() for r in percentile_ranks(10, 100)] == [9, 9]
    assert [r.tolist() for r in percentile_ranks(1, [0, 50, 100])] == [[0, 0, 0], [0, 0, 0]]
    lo, hi = percentile_ranks(11, [0, 10, 15, 99.9])
    assert lo.tolist() == [0, 1, 1, 9] and hi.tolist() == [1, 2, 2, 10]
    # numpy interpolates between exactly these ranks: check on distinct sorted values
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 1000, 123457):
        q = rng.uniform(0, 100, 6)
        lo, hi = percentile_ranks(n, q)
        values = np.sort(rng.standard_normal(n))
        result = percentile_from_order_statistics(
            values[lo], values[hi], n, q, dtype=np.float64, weak_q=False
        )
        _assert_same(result, np.percentile(values, q))


# ---------------------------------------------------------------- order_statistics


@HYP
@given(
    arrays=st.lists(_arrays(max_ndim=2, max_side=9), min_size=1, max_size=3),
    data=st.data(),
    limits=_limit_choices,
    split_every=st.integers(2, 5),
)
def test_order_statistics_match_sort(
    arrays: list[Any], data: st.DataObject, limits: tuple[int, int], split_every: int
) -> None:
    ranks = [data.draw(st.lists(st.integers(0, a.size - 1), max_size=6)).copy() for a, _ in arrays]
    with _limits(*limits):
        result = order_statistics([x for _, x in arrays], ranks, split_every=split_every)
    for (a, _), r, got in zip(arrays, ranks, result, strict=True):
        expected = np.sort(a.ravel())[np.asarray(r, dtype=np.intp)]
        assert got.dtype == a.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected, equal_nan=True)


def test_order_statistics_bool_numpy_and_many_blocks() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(1000) < 0.3
    f = rng.standard_normal((40, 25)).astype(np.float32)
    ranks_b, ranks_f = [0, 699, 700, 999], [[0, 1], [500, 999]]
    got_b, got_f = order_statistics([b, da.from_array(f, chunks=(3, 4))], [ranks_b, ranks_f])
    assert np.array_equal(got_b, np.sort(b)[ranks_b]) and got_b.dtype == bool
    assert np.array_equal(got_f, np.sort(f.ravel())[np.array(ranks_f)])
    assert got_f.shape == (2, 2)


class _Counting:
    """Dask scheduler counting its calls (one per dask.compute)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def test_one_compute_per_pass() -> None:
    rng = np.random.default_rng(2)
    u16 = da.from_array(rng.integers(0, 65535, (60, 70), dtype=np.uint16), chunks=(13, 17))
    i8 = da.from_array(rng.integers(-128, 127, 500, dtype=np.int8), chunks=77)
    f16 = da.from_array(rng.standard_normal(300).astype(np.float16), chunks=50)
    big = rng.standard_normal(2**21 + 5)
    f32 = da.from_array(big.astype(np.float32), chunks=2**18)
    f64 = da.from_array(big, chunks=2**18)
    counter = _Counting()
    with dask.config.set(scheduler=counter):
        order_statistics([u16, i8, f16, u16[:7]], [[0, 4199], [5, 5, 1], [299], [3]])
        assert counter.calls == 1  # 8/16-bit types: one histogram pass, shared
        counter.calls = 0
        order_statistics([f32, f64], [[2**20, 2**21], [0, 2**20, 2**21 + 4]])
        assert counter.calls == 2  # top-16-bit histogram, then gather
        counter.calls = 0
        order_statistics([f32[:1000]], [[10]])
        assert counter.calls == 1  # small arrays are gathered at once
    with dask.config.set(scheduler=counter), _limits(0, 2**20):
        counter.calls = 0
        order_statistics([f32[:1000]], [[10, 500]])
        assert counter.calls == 2  # 16 + 16 bits


class _CountingReader:
    """Array-like counting block reads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads = 0
        self._lock = threading.Lock()

    def __getitem__(self, key: Any) -> np.ndarray:
        out = self.data[key]
        if out.size:  # from_array may probe an empty slice for meta
            with self._lock:
                self.reads += 1
        return out


def test_channels_share_reads() -> None:
    rng = np.random.default_rng(4)
    data = rng.integers(0, 4000, (20, 30, 3), dtype=np.uint16)
    reader = _CountingReader(data)
    x = da.from_array(reader, chunks=(7, 11, 3), asarray=True)
    q = (1.5, 99.8)
    expected = np.percentile(data, q, axis=(0, 1), keepdims=True)
    _assert_same(percentile(x, q, axis=(0, 1), keepdims=True), expected)
    assert reader.reads == x.npartitions  # 3 channels, 1 pass: each block read once


# ---------------------------------------------------------------- errors


def test_errors() -> None:
    x = da.ones((4, 5), chunks=2)
    with pytest.raises(InputError, match=r"\[0, 100\].*101"):
        percentile(x, 101)
    with pytest.raises(InputError, match=r"\[0, 100\]"):
        percentile(x, [10, np.nan])
    with pytest.raises(InputError, match="scalar or 1-d"):
        percentile(x, np.zeros((1, 1, 1)))
    with pytest.raises(InputError, match=r"axis 2 is out of range.*-2\.\.1"):
        percentile(x, 50, axis=2)
    with pytest.raises(InputError, match="repeats"):
        percentile(x, 50, axis=(0, -2))
    with pytest.raises(InputError, match="None, an int or a tuple"):
        percentile(x, 50, axis="y")
    with pytest.raises(InputError, match=r"empty|0 elements"):
        percentile(np.zeros((0, 3)), 50, axis=0)
    with pytest.raises(InputError, match=r"complex128.*not supported"):
        percentile(np.ones(3, complex), 50)
    with pytest.raises(InputError, match=r"ranks of array 0.*\[0, 19\]"):
        order_statistics([x], [[20]])
    with pytest.raises(InputError, match="one ranks entry per array"):
        order_statistics([x, x], [[0]])
    with pytest.raises(InputError, match="unknown chunk sizes"):
        order_statistics([x[x > 0]], [[0]])
    with pytest.raises(InputError, match="unknown chunk sizes"):
        percentile(x[x > 0], 50)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 100), slice_len=st.integers(1, 16), nbins=st.sampled_from([256, 65536]))
def test_sliced_bincount_equals_bincount(n: int, slice_len: int, nbins: int) -> None:
    from caredask.statistics import _kernels

    words = np.random.default_rng(n).integers(0, nbins, n).astype(np.uint16)
    with mock.patch.object(_kernels, "_BINCOUNT_SLICE", slice_len):
        got = _kernels.sliced_bincount(words, nbins)
    assert np.array_equal(got, np.bincount(words, minlength=nbins))
