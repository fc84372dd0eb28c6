"""caredask.create_patches against csbdeep 0.8.2 itself: X, Y, axes and numpy's random state.

Every comparison is exact (``np.array_equal``); caredask receives the images as dask arrays with
random chunkings, csbdeep as numpy arrays.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oracles import oracle

cd = oracle("csbdeep.data", "csbdeep")
import caredask.csbdeep as cc  # noqa: E402
from caredask.errors import EmptyRegionError  # noqa: E402

from .conftest import blob_pair  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_chunks(shape, rs):
    return tuple(int(rs.randint(max(1, s // 4), s + 1)) for s in shape)


def run_both(
    images, axes, patch_size, k, chunk_seed=0, seed=0, cc_kwargs=None, cd_kwargs=None, make_raw=None
):
    rs = np.random.RandomState(chunk_seed)
    X = [x for x, _ in images]
    Y = [y for _, y in images]
    Xd = [da.from_array(x, chunks=random_chunks(x.shape, rs)) for x in X]
    Yd = [da.from_array(y, chunks=random_chunks(y.shape, rs)) for y in Y]
    np.random.seed(seed)
    try:
        ref = cd.create_patches(
            cd.RawData.from_arrays(X, Y, axes), patch_size, k, verbose=False, **(cd_kwargs or {})
        )
    except ValueError as e:
        assert "didn't return any region" in str(e)
        np.random.seed(seed)
        with pytest.raises(EmptyRegionError, match="didn't return any region to sample from"):
            cc.create_patches(
                cc.RawData.from_arrays(Xd, Yd, axes),
                patch_size,
                k,
                verbose=False,
                **(cc_kwargs or cd_kwargs or {}),
            )
        return (None,)
    ref_state = np.random.get_state()
    np.random.seed(seed)
    out = cc.create_patches(
        cc.RawData.from_arrays(Xd, Yd, axes),
        patch_size,
        k,
        verbose=False,
        **(cc_kwargs or cd_kwargs or {}),
    )
    state = np.random.get_state()
    return ref, ref_state, out, state


def assert_same(*args):
    if args == (None,):
        return
    ref, ref_state, out, state = args
    assert ref[2] == out[2]
    assert ref[0].shape == out[0].shape and ref[1].shape == out[1].shape
    assert ref[0].dtype == out[0].dtype == np.float32
    assert np.array_equal(ref[0], out[0], equal_nan=True)
    assert np.array_equal(ref[1], out[1], equal_nan=True)
    assert np.array_equal(ref_state[1], state[1]) and ref_state[2] == state[2]


CONFIGS = st.fixed_dictionaries(
    {
        "dims": st.sampled_from(["2d", "3d"]),
        "dtype": st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64]),
        "odd": st.booleans(),
        "shuffle": st.booleans(),
        "n_images": st.integers(1, 3),
        "k": st.integers(1, 12),
        "seed": st.integers(0, 2**31 - 1),
        "chunk_seed": st.integers(0, 1000),
        "norm": st.sampled_from(["default", "relu", "fixed", "none"]),
        "filt": st.sampled_from(["default", "none", "strict"]),
    }
)


@SETTINGS
@given(cfg=CONFIGS)
def test_random_configurations(cfg):
    if cfg["dims"] == "2d":
        shape, axes, patch = (48, 40), "YX", ((9, 7) if cfg["odd"] else (8, 16))
    else:
        shape, axes, patch = (12, 30, 26), "ZYX", ((3, 9, 7) if cfg["odd"] else (4, 8, 16))
    images = [
        blob_pair(shape, cfg["seed"] % 1000 + i, cfg["dtype"]) for i in range(cfg["n_images"])
    ]
    np.random.seed(0)
    norm = {
        "default": cd.norm_percentiles(),
        "relu": cd.norm_percentiles(relu_last=True),
        "fixed": cd.norm_percentiles((2, 99.8)),
        "none": None,
    }[cfg["norm"]]
    np.random.seed(0)
    cnorm = {
        "default": cc.norm_percentiles(),
        "relu": cc.norm_percentiles(relu_last=True),
        "fixed": cc.norm_percentiles((2, 99.8)),
        "none": None,
    }[cfg["norm"]]
    filt = {
        "default": cd.no_background_patches(),
        "none": None,
        "strict": cd.no_background_patches(0.9, 99.0),
    }[cfg["filt"]]
    cfilt = {
        "default": cc.no_background_patches(),
        "none": None,
        "strict": cc.no_background_patches(0.9, 99.0),
    }[cfg["filt"]]
    common = {"shuffle": cfg["shuffle"]}
    assert_same(
        *run_both(
            images,
            axes,
            patch,
            cfg["k"],
            cfg["chunk_seed"],
            cfg["seed"],
            cc_kwargs={**common, "normalization": cnorm, "patch_filter": cfilt},
            cd_kwargs={**common, "normalization": norm, "patch_filter": filt},
        )
    )


@pytest.mark.parametrize(
    ("axes", "shape", "patch", "patch_axes"),
    [
        ("CYX", (2, 40, 36), (2, 16, 8), None),
        ("ZCYX", (6, 2, 30, 28), (2, 2, 8, 8), None),
        ("YXC", (40, 36, 2), (16, 8, 2), None),
        ("ZYX", (10, 30, 28), (8, 8, 4), "YXZ"),
        ("CYX", (2, 40, 36), (16, 8, 2), "YXC"),
    ],
)
def test_channels_and_patch_axes(axes, shape, patch, patch_axes):
    rs = np.random.RandomState(3)
    images = []
    for _i in range(2):
        y = rs.gamma(1.0, 300, shape).astype(np.uint16)
        x = (y // 3 + rs.randint(0, 50, shape)).astype(np.uint16)
        images.append((x, y))
    assert_same(
        *run_both(
            images, axes, patch, 10, chunk_seed=5, seed=7, cd_kwargs={"patch_axes": patch_axes}
        )
    )


def test_sampling_with_replacement():
    # Only a few eligible centres: csbdeep switches to random.choices.
    y = np.zeros((30, 30), np.uint16)
    y[14, 15] = 1000
    x = y // 2
    assert_same(*run_both([(x, y)], "YX", (6, 6), 50, chunk_seed=1, seed=3))


def test_custom_callables_match(tmp_path):
    # csbdeep's own closures are "custom" to caredask: the eager path must still match.
    images = [blob_pair((24, 28), s) for s in range(2)]
    np.random.seed(1)
    norm = cd.norm_percentiles()
    assert_same(
        *run_both(
            images,
            "YX",
            (8, 8),
            6,
            seed=2,
            cd_kwargs={"normalization": norm, "patch_filter": cd.no_background_patches()},
        )
    )


def test_generator_with_pixel_mask():
    x, y = blob_pair((30, 34), 4)
    mask = np.ones(x.shape, bool)
    mask[:, 10:14] = False
    mask[20:, :] = False

    def make(mod):
        return mod.RawData(lambda: iter([(x, y, "YX", mask)]), 1, "masked")

    results = []
    for mod in (cd, cc):
        np.random.seed(11)
        with pytest.warns(UserWarning) if mod is cd else _nullcontext():
            out = mod.create_patches(make(mod), (6, 6), 8, verbose=False)
        results.append((out, np.random.get_state()))
    assert_same(results[0][0], results[0][1], results[1][0], results[1][1])


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_reduced_target():
    rs = np.random.RandomState(2)
    out = []
    for mod in (cd, cc):
        X = [rs.gamma(1, 300, (6, 24, 20)).astype(np.uint16) for _ in range(2)]
        Y = [rs.gamma(1, 300, (1, 24, 20)).astype(np.uint16) for _ in range(2)]
        np.random.seed(5)
        res = mod.create_patches_reduced_target(
            mod.RawData.from_arrays(X, Y, "ZYX"), (None, 8, 8), 5, "Z", verbose=False
        )
        out.append((res, np.random.get_state()))
        rs = np.random.RandomState(2)
    assert_same(out[0][0], out[0][1], out[1][0], out[1][1])


def test_crop_and_broadcast_transforms():
    rs = np.random.RandomState(9)
    X = [rs.gamma(1, 300, (5, 30, 28)).astype(np.uint16) for _ in range(2)]
    Y = [rs.gamma(1, 300, (30, 28)).astype(np.uint16) for _ in range(2)]
    results = []
    for mod in (cd, cc):
        tfs = [
            mod.broadcast_target("YX"),
            mod.crop_images((slice(1, 5), slice(2, 27), slice(0, 26))),
        ]
        np.random.seed(4)
        raw = mod.RawData(
            lambda: ((x, y, "ZYX", None) for x, y in zip(X, Y, strict=True)), 2, "bcast"
        )
        results.append(
            (
                mod.create_patches(raw, (2, 8, 8), 7, transforms=tfs, verbose=False),
                np.random.get_state(),
            )
        )
    assert_same(results[0][0], results[0][1], results[1][0], results[1][1])


def test_nan_in_float_images():
    x, y = blob_pair((24, 20), 3, np.float32)
    x = x.copy()
    x[3, 4] = np.nan
    # NaN in the source only: csbdeep's source percentiles become NaN, so do ours.
    assert_same(*run_both([(x, y)], "YX", (8, 8), 4, seed=1))
    y = y.copy()
    y[5, 5] = np.nan
    # NaN in the target: the filter threshold is NaN and no region is eligible.
    assert run_both([(x, y)], "YX", (8, 8), 4, seed=1) == (None,)
