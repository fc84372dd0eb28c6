"""Flips, rotations, channels one by one, frame accumulation, differently sized images."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

import caredask.csbdeep as cc
from caredask.errors import AxesError, InputError
from caredask.loaders import LazyImage, open_images
from caredask.transforms import (
    Transform,
    accumulate_frames,
    accumulate_image,
    flip_xy,
    is_rng_free,
    permute_axes,
    rotate_xy,
    split_channels,
    sum_frames,
    transform_labels,
)
from caredask.transforms.frames import check_accumulator, frame_index, sum_frames_numpy
from tests.oracles import oracle
from tests.strategies import irregular_chunks

cd = oracle("csbdeep.data", "csbdeep")

SETTINGS = settings(max_examples=30, deadline=None)


def outputs(tf, x, y=None, axes="ZYX", mask=None):
    return list(tf.generator(iter([(x, x if y is None else y, axes, mask)])))


def arr(shape, seed=0, dtype=np.uint16):
    return np.random.RandomState(seed).randint(0, 1000, size=shape).astype(dtype)


# --- flips and rotations ---------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_flip_xy_equals_numpy_on_random_chunkings(data):
    x = arr((3, 7, 9), 1)
    y, mask = arr((3, 7, 9), 2), arr((3, 7, 9), 3) > 500
    ch = data.draw(irregular_chunks(x.shape))
    tf = flip_xy()
    assert tf.size == 4 and is_rng_free(tf.generator)
    got = list(tf.generator(iter([(da.from_array(x, chunks=ch), y, "ZYX", mask)])))
    expect = [
        (x, y, mask),
        (x[..., ::-1], y[..., ::-1], mask[..., ::-1]),
        (x[:, ::-1], y[:, ::-1], mask[:, ::-1]),
        (x[:, ::-1, ::-1], y[:, ::-1, ::-1], mask[:, ::-1, ::-1]),
    ]
    for (gx, gy, axes, gm), (ex, ey, em) in zip(got, expect, strict=True):
        assert axes == "ZYX" and isinstance(gx, da.Array)
        assert np.array_equal(gx.compute(), ex)
        assert np.array_equal(gy, ey) and np.array_equal(gm, em)


@SETTINGS
@given(data=st.data(), angles=st.sampled_from([(0, 90, 180, 270), (90,), (0, 180), (270, 0)]))
def test_rotate_xy_equals_np_rot90(data, angles):
    x = arr((5, 2, 6), 4)  # Y C X
    ch = data.draw(irregular_chunks(x.shape))
    tf = rotate_xy(angles)
    assert tf.size == len(angles) and is_rng_free(tf.generator)
    got = outputs(tf, da.from_array(x, chunks=ch), x, "YCX", x > 500)
    for (gx, gy, axes, gm), ang in zip(got, angles, strict=True):
        ex = np.rot90(x, ang // 90, axes=(0, 2))
        assert axes == "YCX" and np.array_equal(gx.compute(), ex)
        assert np.array_equal(gy, ex) and np.array_equal(gm, ex > 500)


def test_flip_rotate_errors():
    with pytest.raises(InputError, match="non-spatial"):
        flip_xy(("", "C"))
    with pytest.raises(InputError, match="distinct"):
        flip_xy(("X", "x"))
    with pytest.raises(AxesError, match="no axis Y"):
        outputs(flip_xy(("Y",)), arr((4, 5)), axes="ZX")
    with pytest.raises(InputError, match="one of 0, 90"):
        rotate_xy((45,))
    with pytest.raises(InputError, match="distinct"):
        rotate_xy((0, 0))
    with pytest.raises(AxesError, match="needs both Y and X"):
        outputs(rotate_xy(), arr((4, 5)), axes="ZX")


def test_labels():
    assert transform_labels([flip_xy(), rotate_xy((0, 90))]) == [
        "",
        "rot90",
        "flipX",
        "flipX,rot90",
        "flipY",
        "flipY,rot90",
        "flipXY",
        "flipXY,rot90",
    ]
    assert transform_labels([permute_axes("YX"), split_channels(2)]) == ["c0", "c1"]
    plain = Transform("two", lambda it: it, 2)
    assert transform_labels([plain, flip_xy(("", "X"))]) == ["0", "0,flipX", "1", "1,flipX"]


def test_augmented_create_patches_matches_csbdeep():
    """csbdeep's own create_patches accepts these transforms (numpy inputs) and agrees."""
    xs = [arr((40, 36), s) for s in (5, 6)]
    ys = [(a * 2 + 7).astype(np.uint16) for a in xs]
    tfs = [flip_xy(), rotate_xy((0, 90))]

    def run(mod, X, Y):
        np.random.seed(1)
        raw = mod.RawData.from_arrays(X, Y, axes="YX")
        X, Y, axes = mod.create_patches(raw, (8, 8), 3, transforms=tfs, verbose=False)
        return np.asarray(X), np.asarray(Y), axes, np.random.get_state()[2]

    ref = run(cd, xs, ys)
    got = run(cc, [da.from_array(a, chunks=(13, 17)) for a in xs], ys)
    assert ref[0].shape[0] == 2 * 8 * 3
    assert got[2] == ref[2] and got[3] == ref[3]
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])


def test_rotation_of_non_square_patch_needs_room():
    raw = cc.RawData.from_arrays([arr((40, 12))], [arr((40, 12), 1)], axes="YX")
    with pytest.raises(InputError, match="larger than data shape"):
        cc.create_patches(raw, (16, 8), 2, transforms=[rotate_xy()], verbose=False)


# --- channels one by one ---------------------------------------------------------------------


@pytest.mark.parametrize("keep", [False, True])
def test_split_channels(keep):
    x, y = arr((3, 10, 12), 7), arr((3, 10, 12), 8)
    mask = x > 300
    tf = split_channels(3, keep_axis=keep)
    assert tf.size == 3 and is_rng_free(tf.generator)
    got = outputs(tf, da.from_array(x, chunks=(2, 5, 5)), y, "CYX", mask)
    for c, (gx, gy, axes, gm) in enumerate(got):
        sl = slice(c, c + 1) if keep else c
        assert axes == ("CYX" if keep else "YX")
        assert np.array_equal(gx.compute(), x[sl]) and np.array_equal(gy, y[sl])
        assert np.array_equal(gm, mask[sl])
    assert transform_labels([tf]) == ["c0", "c1", "c2"]


def test_split_channels_errors():
    with pytest.raises(InputError, match="positive int"):
        split_channels(0)
    with pytest.raises(AxesError, match="no C axis"):
        outputs(split_channels(2), arr((4, 5)), axes="YX")
    with pytest.raises(InputError, match="expected n_channels=2"):
        outputs(split_channels(2), arr((3, 4, 5)), axes="CYX")


def test_split_channels_names_in_zarr_provenance(tmp_path):
    import zarr

    x = np.stack([arr((32, 30), 9), arr((32, 30), 10) + 2000]).astype(np.uint16)
    raw = cc.RawData.from_arrays([x], [x], axes="CYX")
    tf = split_channels(2)
    np.random.seed(0)
    ref = cc.create_patches(raw, (8, 8), 4, transforms=[tf], verbose=False, shuffle=False)
    X = ref[0]
    assert X.shape == (8, 1, 8, 8) and ref[2] == "SCYX"
    # each channel's patches come from that channel only (channel 1 is offset by 2000)
    assert X[:4].max() <= 1.5 and X[4:].min() >= -0.5
    from caredask.sampling.create import generate_training_data

    generate_training_data(raw, (8, 8), 4, seed=1, transforms=[tf], save_file=tmp_path / "t.zarr")
    g = zarr.open_group(tmp_path / "t.zarr", mode="r")
    names = [im["name"] for im in g.attrs["caredask"]["images"]]
    assert names == ["array[0]#c0", "array[0]#c1"]  # one entry per channel image
    assert sorted(set(np.asarray(g["patch_image"]).tolist())) == [0, 1]


# --- frame accumulation --------------------------------------------------------------------


@SETTINGS
@given(
    data=st.data(),
    frames=st.sampled_from([1, 3, 6, slice(1, 4), slice(0, 6, 2), range(2, 5), [5, 0, 3]]),
    dtype=st.sampled_from(["uint16", "uint32", "int32", "float32", "float64"]),
    axis=st.integers(0, 2),
)
def test_sum_frames_equals_numpy_twin(data, frames, dtype, axis):
    shape = [4, 5, 3]
    shape[axis] = 6
    x = arr(tuple(shape), 11, np.uint8)
    ch = data.draw(irregular_chunks(tuple(shape)))
    got = sum_frames(da.from_array(x, chunks=ch), frames, axis, dtype)
    twin = sum_frames_numpy(x, frames, axis, dtype)
    assert got.dtype == np.dtype(dtype) and twin.dtype == np.dtype(dtype)
    assert np.array_equal(got.compute(), twin)
    idx = (
        np.arange(6)[frames]
        if isinstance(frames, slice)
        else (np.arange(frames) if isinstance(frames, int) else np.asarray(list(frames)))
    )
    assert np.array_equal(twin, np.take(x, idx, axis=axis).astype(np.float64).sum(axis))


def test_sum_frames_no_silent_widening_and_overflow_checks():
    x = np.full((40, 4, 4), 65535, np.uint16)
    s = sum_frames(da.from_array(x, chunks=(7, 2, 2)), 40, 0)
    assert s.dtype == np.uint32 and int(s.compute()[0, 0]) == 40 * 65535
    with pytest.raises(InputError, match="may overflow uint16"):
        sum_frames(x, 2, 0, "uint16")
    wrapped = sum_frames(x, 2, 0, "uint16", check_overflow=False).compute()
    assert wrapped.dtype == np.uint16 and int(wrapped[0, 0]) == (2 * 65535) % 65536
    with pytest.raises(InputError, match="may overflow uint32"):
        check_accumulator(np.int16, "uint32", 2)
    with pytest.raises(InputError, match="exactly"):
        check_accumulator(np.uint32, "float32", 2)
    check_accumulator(np.uint16, "float32", 40)  # 2.6 M < 2**24: exact
    with pytest.raises(InputError, match="float dtype"):
        check_accumulator(np.float32, "uint32", 2)
    with pytest.raises(InputError, match="integer or float"):
        check_accumulator(np.uint8, "complex64", 2)


def test_frame_index_rules():
    assert frame_index(5, 40) == slice(0, 5)
    assert frame_index(range(5, 45), 45) == slice(5, 45)
    assert np.array_equal(frame_index([0, 2], 4), [0, 2])
    for spec, match in [
        (41, "first 41"),
        (0, "first 0"),
        (slice(0, 50), "end after"),
        ([0, 40], "outside"),
        ([1, 1], "repeat"),
        (slice(3, 3), "no frame"),
    ]:
        with pytest.raises(InputError, match=match):
            frame_index(spec, 40)


def test_accumulate_frames_transform(no_compute):
    stack = arr((2, 45, 16, 12), 12)  # C T Y X
    d = da.from_array(stack, chunks=(1, 10, 8, 12))
    tf = accumulate_frames(range(0, 5), range(5, 45), frame_axis="t")
    assert is_rng_free(tf.generator)
    mask = da.from_array(stack > 100, chunks=(1, 10, 8, 12))
    ((x, y, axes, m),) = list(tf.generator(iter([(d, None, "CTYX", mask)])))
    assert axes == "CYX" and x.dtype == y.dtype == np.uint32 and x.shape == (2, 16, 12)
    assert isinstance(x, da.Array) and isinstance(m, da.Array)


def test_accumulate_frames_values_and_flame_prefix():
    stack = arr((40, 9, 7), 13)
    ((x, y, axes, _),) = outputs(accumulate_frames(5, 40), stack, None, "TYX")
    assert axes == "YX"
    assert np.array_equal(x.compute(), stack[:5].sum(0)) and np.array_equal(
        y.compute(), stack.sum(0)
    )
    other = arr((40, 9, 7), 14)
    ((_, y2, _, _),) = outputs(accumulate_frames(5, [1, 3]), stack, other, "TYX")
    assert np.array_equal(y2.compute(), other[[1, 3]].sum(0))
    with pytest.raises(AxesError, match="frame axis 'T'"):
        outputs(accumulate_frames(1, 2), stack, None, "ZYX")
    with pytest.raises(InputError, match="target stack shape"):
        outputs(accumulate_frames(1, 2), stack, other[:3], "TYX")
    with pytest.raises(InputError, match="may overflow"):
        outputs(accumulate_frames(5, 40, dtype="uint16"), stack, None, "TYX")


def test_accumulate_image_and_pipeline(tmp_path):
    rs = np.random.RandomState(15)
    clean = rs.gamma(1, 30, size=(24, 20))
    for i in range(2):
        frames = rs.poisson(clean, size=(12, 24, 20)).astype(np.uint16)
        tifffile.imwrite(tmp_path / f"s{i}.tif", frames, metadata={"axes": "TYX"})
    img = open_images(tmp_path / "s0.tif", axes="TYX")[0]
    low = accumulate_image(img, 3)
    assert isinstance(low, LazyImage) and low.axes == "YX" and low.name.endswith("[3]")
    assert np.array_equal(low.data.compute(), tifffile.imread(tmp_path / "s0.tif")[:3].sum(0))
    raw = cc.RawData.from_sources(
        [tmp_path / "s0.tif", tmp_path / "s1.tif"],
        [tmp_path / "s0.tif", tmp_path / "s1.tif"],
        axes="TYX",
    )
    X, _Y, axes = cc.create_patches(
        raw, (8, 8), 4, transforms=[accumulate_frames(range(0, 3), range(3, 12))], verbose=False
    )
    assert X.shape == (8, 1, 8, 8) and axes == "SCYX"


# --- images of different sizes ---------------------------------------------------------------


def test_different_image_sizes_sampled_within_own_extent():
    """Each image is sampled inside its own extent: no padding to the largest image."""
    shapes = [(20, 50), (47, 18), (16, 16), (33, 29)]
    xs, ys = [], []
    for i, s in enumerate(shapes):
        base = 1000 * (i + 1)
        ys.append((base + np.arange(np.prod(s)).reshape(s) % 997).astype(np.uint16))
        xs.append((ys[-1] // 2).astype(np.uint16))

    def run(mod, X):
        np.random.seed(7)
        raw = mod.RawData.from_arrays(X, ys, axes="YX")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mod.create_patches(
                raw,
                (16, 16),
                5,
                patch_filter=None,
                normalization=None,
                shuffle=False,
                verbose=False,
            )

    ref = run(cd, xs)
    X, Y, _ = run(cc, [da.from_array(a, chunks=(7, 9)) for a in xs])
    assert np.array_equal(X, ref[0]) and np.array_equal(Y, ref[1])
    for i in range(len(shapes)):
        patches = Y[5 * i : 5 * (i + 1)]
        # values from image i only, never a zero from padding
        assert patches.min() >= 1000 * (i + 1) and patches.max() < 1000 * (i + 1) + 997
    # the 16x16 image holds exactly one patch position: the whole image
    assert np.all(Y[10:15, 0] == ys[2])
