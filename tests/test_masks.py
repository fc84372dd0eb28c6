"""Blockwise masks and rank location against their numpy twins, on random chunkings."""

from __future__ import annotations

import dask.array as da
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from caredask.masks.background import (
    border_slices,
    box_dilate,
    dilate_above_mask,
    erode_pixel_mask,
    packed_line_counts,
    packed_mask,
)
from caredask.masks.filters import no_background_patches
from caredask.sampling.centres import locate_ranks
from tests.oracles import oracle
from tests.strategies import regular_chunks

cdg = oracle("csbdeep.data", "csbdeep")

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def arrays_and_chunks(draw, max_ndim=3, dtype=None):
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.integers(1, 24)) for _ in range(ndim))
    rs = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    chunks = draw(regular_chunks(shape))
    return shape, chunks, rs


@SETTINGS
@given(data=arrays_and_chunks(), cval=st.booleans(), density=st.floats(0, 1))
def test_box_dilate_equals_scipy(data, cval, density):
    shape, _, rs = data
    m = rs.uniform(size=shape) < density * 0.2
    size = tuple(int(rs.randint(1, 12)) for _ in shape)
    ref = ndi.maximum_filter(m, size=size, mode="constant", cval=cval)
    assert np.array_equal(box_dilate(m, size, cval), ref)


@SETTINGS
@given(
    data=arrays_and_chunks(),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]),
    negative=st.booleans(),
)
def test_dask_background_mask_equals_csbdeep(data, dtype, negative):
    shape, chunks, rs = data
    y = rs.gamma(0.5, 100, size=shape)
    if negative:
        y = y - 150
    y = y.astype(dtype) if np.dtype(dtype).kind == "f" or not negative or dtype != np.uint8 else y
    if np.dtype(dtype).kind == "u":
        y = np.abs(y)
    y = y.astype(dtype)
    patch = tuple(int(rs.randint(1, s + 1)) for s in shape)
    filt = no_background_patches(0.4, 99.0)
    ref = cdg.no_background_patches(0.4, 99.0)((y, y), patch)
    p = np.percentile(y.astype(np.float32), 99.0)
    got = dilate_above_mask(da.from_array(y, chunks=chunks), filt.threshold_from(p), patch)
    assert np.array_equal(got.compute(), ref)
    assert np.array_equal(filt((y, y), patch), ref)


@SETTINGS
@given(data=arrays_and_chunks())
def test_pixel_mask_erosion(data):
    shape, chunks, rs = data
    m = rs.uniform(size=shape) < 0.9
    patch = tuple(int(rs.randint(1, s + 1)) for s in shape)
    ref = ndi.minimum_filter(m, patch, mode="constant", cval=False)
    got = erode_pixel_mask(da.from_array(m, chunks=chunks), patch).compute()
    assert np.array_equal(got, ref)


@SETTINGS
@given(data=arrays_and_chunks(), density=st.floats(0.01, 1), k=st.integers(1, 30))
def test_locate_ranks_matches_np_where(data, density, k):
    shape, chunks, rs = data
    full = rs.uniform(size=shape) < density
    patch = tuple(int(rs.randint(1, s + 1)) for s in shape)
    border = border_slices(shape, patch)
    m = full[border]
    if not m.any():
        return
    dm = da.from_array(full, chunks=chunks)[border]
    packed = packed_mask(dm).persist()
    counts = packed_line_counts(packed).compute()
    assert counts.sum() == np.count_nonzero(m)
    valid = np.where(m)
    ranks = rs.randint(0, len(valid[0]), size=k)
    got = locate_ranks(ranks, counts, packed, dm.chunks[-1], [s.start for s in border])
    want = np.stack([v[ranks] + s.start for v, s in zip(valid, border, strict=True)], axis=-1)
    assert np.array_equal(got, want)
