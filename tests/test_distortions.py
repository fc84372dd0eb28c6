"""anisotropic_distortions against csbdeep 0.8.2 and its kernels against their numpy twins."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caredask.errors import AxesError, InputError
from caredask.transforms import anisotropic_distortions, is_rng_free
from caredask.transforms.noise import noise_blockwise, seeded_noise
from caredask.transforms.psf import convolve_blockwise, convolve_psf, convolve_tiles
from caredask.transforms.subsample import adjust_subsample, scale_blockwise, scale_down_up
from caredask.transforms.tiles import tile_shape
from tests.oracles import oracle
from tests.strategies import irregular_chunks

cd = oracle("csbdeep.data", "csbdeep")

SETTINGS = settings(max_examples=30, deadline=None)
# Whole-image FFT (csbdeep) vs tile-wise FFT (caredask), both float32: measured ~5e-7.
FFT_RTOL = 1e-5


def image(shape, seed=0, dtype=np.uint16, scale=1000):
    rs = np.random.RandomState(seed)
    return (rs.gamma(2, scale / 2, size=shape)).astype(dtype)


def first(tf, x, y=None, axes="ZYX", mask=None):
    return next(iter(tf.generator(iter([(x, y, axes, mask)]))))


def quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


def assert_fft_close(got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=0, atol=FFT_RTOL * float(np.abs(ref).max()))


# --- csbdeep's subsample adjustment --------------------------------------------------------


def csbdeep_adjust():
    tf = quiet(cd.anisotropic_distortions, 2, None)
    cells = dict(
        zip(
            tf.generator.__code__.co_freevars,
            (c.cell_contents for c in tf.generator.__closure__),
            strict=True,
        )
    )
    return cells["_adjust_subsample"]


@SETTINGS
@given(
    d=st.integers(1, 400),
    s=st.sampled_from([1.0, 1.5, 2, 2.5, 2.7, 2.75, 3.3, 3.33, 4.125, 1.05, 7.0, 12.6, 1.0001]),
    c=st.sampled_from([0.05, 0.2, 0.5, 0.9]),
)
def test_adjust_subsample_equals_csbdeep(d, s, c):
    ref_fn = csbdeep_adjust()
    try:
        ref = ref_fn(d, s, c)
    except ValueError:
        with pytest.raises(InputError, match="too large"):
            adjust_subsample(d, s, c)
        return
    assert adjust_subsample(d, s, c) == ref


def test_adjust_subsample_example():
    assert adjust_subsample(100, 2.7, 0.2) == (2.7, 81)


# --- deterministic steps against csbdeep ---------------------------------------------------

CONFIGS = [
    # (shape, axes, subsample, subsample_axis, psf shape or None, psf_axes)
    ((12, 40, 33), "ZYX", 2, "X", None, None),
    ((12, 40, 33), "ZYX", 2.7, "Y", None, None),
    ((21, 30, 30), "ZYX", 3.5, "Z", None, None),
    ((12, 40, 33), "ZYX", 1, "X", (5, 3, 7), None),
    ((12, 40, 33), "ZYX", 2.5, "Z", (6, 4, 3), None),
    ((40, 33), "YX", 3, "X", (9, 1), None),
    ((2, 10, 24, 20), "CZYX", 2, "X", (1, 3, 5, 5), None),
    ((10, 2, 24, 20), "ZCYX", 2, "Y", (3, 2, 5, 5), None),
    ((10, 24, 20), "ZYX", 2, "Z", (5, 3), "ZX"),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_deterministic_steps_match_csbdeep(cfg):
    shape, axes, sub, sax, pshape, paxes = cfg
    img = image(shape)
    psf = None if pshape is None else np.random.RandomState(1).rand(*pshape)
    ref = quiet(
        first,
        quiet(
            cd.anisotropic_distortions,
            sub,
            None if psf is None else psf.copy(),
            paxes,
            subsample_axis=sax,
        ),
        img,
        None,
        axes,
    )
    chunks = tuple(max(1, n // 3) for n in shape)
    got = quiet(
        first,
        quiet(anisotropic_distortions, sub, psf, paxes, subsample_axis=sax),
        da.from_array(img, chunks=chunks),
        None,
        axes,
    )
    assert got[2] == ref[2]
    assert np.array_equal(np.asarray(got[1]), ref[1]) and got[1].dtype == ref[1].dtype
    if psf is None:
        assert np.array_equal(got[0].compute(), ref[0]) and got[0].dtype == np.float32
    else:
        assert_fft_close(got[0].compute(), ref[0])


@SETTINGS
@given(data=st.data(), sub=st.sampled_from([1, 2, 2.5, 3.3]), ax=st.sampled_from("ZYX"))
def test_subsample_exact_on_random_chunkings(data, sub, ax):
    shape = (9, 23, 17)
    img = image(shape, 3)
    ref = quiet(first, quiet(cd.anisotropic_distortions, sub, None, subsample_axis=ax), img)
    chunks = data.draw(irregular_chunks(shape, max_cuts=4))
    x = da.from_array(img, chunks=chunks)
    got = quiet(first, quiet(anisotropic_distortions, sub, None, subsample_axis=ax), x)
    assert np.array_equal(got[0].compute(), ref[0])
    assert np.array_equal(got[1].compute(), ref[1])


@SETTINGS
@given(data=st.data(), axis=st.integers(0, 2), factor=st.sampled_from([2.0, 2.5, 3.0]))
def test_scale_blockwise_equals_numpy_twin(data, axis, factor):
    shape = [10, 15, 12]
    shape[axis] = 30
    x = np.random.RandomState(0).rand(*shape).astype(np.float32)
    chunks = data.draw(irregular_chunks(tuple(shape), max_cuts=4))
    got = scale_blockwise(da.from_array(x, chunks=chunks), axis, factor).compute()
    assert np.array_equal(got, scale_down_up(x, axis, factor))


# --- convolution ---------------------------------------------------------------------------


def _psf(shape, seed=2):
    p = np.random.RandomState(seed).rand(*shape).astype(np.float32)
    return p / np.sum(p)


@SETTINGS
@given(
    data=st.data(),
    pshape=st.sampled_from([(1, 1, 1), (3, 3, 3), (4, 5, 2), (7, 1, 9), (15, 3, 3)]),
    tile=st.sampled_from([4, 7, 64]),
)
def test_tiled_convolution_chunk_independent(data, pshape, tile):
    shape = (11, 19, 14)
    x = image(shape, 4).astype(np.float32)
    psf = _psf(pshape)
    twin = convolve_tiles(x, psf, (0, 0, 0), None, tile_shape(3, tile, None))
    chunks = data.draw(irregular_chunks(shape, max_cuts=4))
    got = convolve_blockwise(da.from_array(x, chunks=chunks), psf, None, tile).compute()
    assert np.array_equal(got, twin)
    assert_fft_close(twin, convolve_psf(x, psf, None))


@SETTINGS
@given(data=st.data(), n_psf=st.sampled_from([1, 3]))
def test_tiled_convolution_per_channel(data, n_psf):
    shape = (3, 13, 16)
    x = image(shape, 5).astype(np.float32)
    psf = _psf((n_psf, 5, 3))
    twin = convolve_tiles(x, psf, (0, 0, 0), 0, tile_shape(3, 8, 0))
    chunks = data.draw(irregular_chunks(shape, max_cuts=4))
    got = convolve_blockwise(da.from_array(x, chunks=chunks), psf, 0, 8)
    assert np.array_equal(got.compute(), twin)
    assert_fft_close(twin, convolve_psf(x, psf, 0))


def test_psf_larger_than_image():
    x = image((5, 6), 6).astype(np.float32)
    psf = _psf((15, 11))
    got = convolve_blockwise(da.from_array(x, chunks=(2, 3)), psf, None, 4).compute()
    assert_fft_close(got, convolve_psf(x, psf, None))


# --- noise -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(poisson_noise=True),
        dict(gauss_sigma=7.5),
        dict(poisson_noise=True, gauss_sigma=3),
        dict(poisson_noise=True, psf=(3, 5, 3)),
        dict(gauss_sigma=2, psf=(1, 3, 3), subsample=2.5),
    ],
)
def test_compat_noise_identical_to_csbdeep(kw):
    kw = dict(kw)
    psf = None if "psf" not in kw else np.random.RandomState(1).rand(*kw.pop("psf"))
    sub = kw.pop("subsample", 2)
    img = image((10, 24, 20), 7, scale=200)
    np.random.seed(11)
    ref = quiet(
        first,
        quiet(cd.anisotropic_distortions, sub, None if psf is None else psf.copy(), **kw),
        img,
    )
    ref_state = np.random.get_state()
    np.random.seed(11)
    tf = quiet(anisotropic_distortions, sub, psf, **kw)
    assert not is_rng_free(tf.generator)
    got = quiet(first, tf, da.from_array(img, chunks=(3, 7, 9)))
    state = np.random.get_state()
    assert np.array_equal(got[0].compute(), ref[0])
    assert np.array_equal(np.asarray(got[1]), ref[1])
    assert np.array_equal(state[1], ref_state[1]) and state[2] == ref_state[2]


@SETTINGS
@given(data=st.data(), poisson=st.booleans(), sigma=st.sampled_from([0.0, 4.0]))
def test_seeded_noise_chunk_independent(data, poisson, sigma):
    shape = (7, 21, 18)
    x = image(shape, 8, scale=50).astype(np.float32)
    tiles = tile_shape(3, 5, None)
    twin = seeded_noise(x, 123, 4, tiles, (0, 0, 0), poisson, sigma)
    chunks = data.draw(irregular_chunks(shape, max_cuts=4))
    got = noise_blockwise(da.from_array(x, chunks=chunks), 123, 4, 5, None, poisson, sigma)
    assert np.array_equal(got.compute(), twin)


def test_seeded_transform_chunk_independent_and_keyed():
    img = image((8, 30, 26), 9, scale=100)
    psf = np.random.RandomState(2).rand(3, 5, 5)
    tf = quiet(anisotropic_distortions, 2.5, psf, poisson_noise=True, gauss_sigma=2, seed=5, tile=8)
    assert is_rng_free(tf.generator)
    state = np.random.get_state()
    ref = first(tf, img)[0].compute()
    assert np.array_equal(np.random.get_state()[1], state[1])  # global state untouched
    for chunks in [(3, 7, 11), (8, 30, 26), (1, 16, 5)]:
        got = first(tf, da.from_array(img, chunks=chunks))[0].compute()
        assert np.array_equal(got, ref)
    other = first(
        quiet(anisotropic_distortions, 2.5, psf, poisson_noise=True, gauss_sigma=2, seed=6, tile=8),
        img,
    )[0].compute()
    assert not np.array_equal(other, ref)
    # each image gets its own noise (keyed by its index in the stream)
    outs = list(tf.generator(iter([(img, None, "ZYX", None)] * 2)))
    assert not np.array_equal(outs[0][0].compute(), outs[1][0].compute())


def test_seeded_poisson_rounds_mean():
    x = np.full((64, 64), 2.6, np.float32)
    out = seeded_noise(x, 1, 0, (64, 64), (0, 0), True, 0)
    assert abs(out.mean() - 3.0) < 0.15  # rint(2.6) = 3; csbdeep would truncate to 2


# --- csbdeep's defects, fixed ------------------------------------------------------------------


def test_psf_not_modified_and_mask_cropped():
    psf = np.ones((3, 3, 3), np.float32)
    img = image((6, 20, 23), 10)
    mask = np.ones(img.shape, bool)
    tf = quiet(anisotropic_distortions, 2.5, psf)
    x, y, _axes, m = first(tf, img, None, "ZYX", mask)
    assert np.all(psf == 1)  # csbdeep divides it by 27 in place
    assert m.shape == x.shape == y.shape == (6, 20, 20)


def test_target_check_by_identity():
    img = image((6, 10, 10), 11)
    xd = da.from_array(img, chunks=4)
    tf = quiet(anisotropic_distortions, 2, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first(tf, xd, xd)
        first(tf, img, img.copy())
    with pytest.warns(UserWarning, match="ignoring 'target'"):
        first(tf, xd, xd + 1)
    y = image((6, 10, 10), 12)
    out = first(quiet(anisotropic_distortions, 2, None, yield_target="target"), img, y)
    assert np.array_equal(np.asarray(out[1]), y)


# --- laziness ---------------------------------------------------------------------------------


def test_building_computes_nothing(no_compute):
    img = da.from_array(image((8, 32, 30), 13), chunks=(4, 16, 10))
    psf = np.ones((3, 3, 3))
    tf = quiet(anisotropic_distortions, 2.5, psf, poisson_noise=True, gauss_sigma=1, seed=0)
    x, _y, _, _ = first(tf, img)
    assert isinstance(x, da.Array) and x.shape == (8, 32, 30)
    x2, _, _, _ = first(tf, img)
    assert x2.name == x.name  # deterministic graph names


def test_compat_noise_computes_image_when_pulled():
    """csbdeep-identical noise needs the whole image in memory: it is computed when pulled."""
    img = da.from_array(image((4, 16, 16), 14), chunks=8)
    tf = quiet(anisotropic_distortions, 2, None, gauss_sigma=1)
    calls = []

    def counting(dsk, keys, **kw):
        calls.append(len(keys))
        return dask.get(dsk, keys, **kw)

    with dask.config.set(scheduler=counting):
        x, _, _, _ = first(tf, img)
    assert len(calls) == 1
    assert img.name not in x.dask.layers  # the drawn pixels are in the graph, not the source


# --- errors and warnings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(subsample=0.5), InputError, "subsample must be"),
        (dict(subsample_axis="XY"), AxesError, "one axis letter"),
        (dict(subsample_axis="Q"), AxesError, "invalid axis"),
        (dict(crop_threshold=1.5), InputError, "crop_threshold"),
        (dict(yield_target="both"), InputError, "yield_target"),
        (dict(psf=[1, 2]), InputError, "numpy array"),
        (dict(psf=-np.ones((3, 3, 3))), InputError, "negative"),
        (dict(psf=np.zeros((3, 3, 3))), InputError, "sums to zero"),
        (dict(seed=-1), InputError, "seed"),
    ],
)
def test_construction_errors(kw, err, match):
    args = dict(subsample=2, psf=np.ones((3, 3, 3)))
    args.update(kw)
    with pytest.raises(err, match=match):
        anisotropic_distortions(**args)


def test_application_errors_and_warnings():
    img = image((6, 12, 12), 15)
    with pytest.raises(AxesError, match="same number of dimensions"):
        first(anisotropic_distortions(2, np.ones((3, 3))), img)
    with pytest.raises(AxesError, match="not an axis"):
        first(anisotropic_distortions(2, np.ones((3, 3)), subsample_axis="Z"), img[0], None, "YX")
    with pytest.raises(InputError, match="too large"):
        first(anisotropic_distortions(11.3, np.ones((1, 1, 1)), crop_threshold=0.05), img)
    with pytest.raises(InputError, match="psf channels"):
        first(anisotropic_distortions(2, np.ones((2, 3, 3))), np.stack([img[0]] * 3), None, "CYX")
    with pytest.raises(InputError, match="differs from source"):
        first(anisotropic_distortions(2, np.ones((1, 1, 1)), yield_target="target"), img, img[1:])
    with pytest.warns(UserWarning, match="same psf to every channel"):
        first(anisotropic_distortions(2, np.ones((1, 3, 3))), np.stack([img[0]] * 3), None, "CYX")
    with pytest.warns(UserWarning, match="changing subsample from 2.7 to 3.0"):
        first(anisotropic_distortions(2.7, np.ones((1, 1, 1))), img)
    with pytest.warns(UserWarning, match="strongly recommended"):
        anisotropic_distortions(2, None)


# --- in the pipeline ----------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [dict(poisson_noise=True, gauss_sigma=2), dict()])
def test_create_patches_with_distortions_matches_csbdeep(noise):
    import caredask.csbdeep as cc

    rs = np.random.RandomState(16)
    imgs = [image((6, 40, 36), s, scale=300) for s in (1, 2)]
    imgs = [np.maximum(i, rs.randint(0, 4000, i.shape)).astype(np.uint16) for i in imgs]

    def run(mod, tf, arrays):
        np.random.seed(3)
        raw = mod.RawData.from_arrays(arrays, arrays, axes="ZYX")
        X, Y, axes = quiet(mod.create_patches, raw, (4, 8, 8), 5, transforms=[tf], verbose=False)
        return np.asarray(X), np.asarray(Y), axes, np.random.get_state()

    ref = run(cd, quiet(cd.anisotropic_distortions, 2, None, **noise), imgs)
    dimgs = [da.from_array(i, chunks=(3, 20, 12)) for i in imgs]
    got = run(cc, quiet(anisotropic_distortions, 2, None, **noise), dimgs)
    assert got[2] == ref[2]
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    assert np.array_equal(got[3][1], ref[3][1]) and got[3][2] == ref[3][2]


def test_compat_noise_with_channels_identical_to_csbdeep():
    img = image((2, 6, 20, 18), 17, scale=100)
    psf = np.random.RandomState(3).rand(2, 3, 3, 3)
    np.random.seed(4)
    ref = quiet(
        first,
        quiet(
            cd.anisotropic_distortions,
            2,
            psf.copy(),
            poisson_noise=True,
            gauss_sigma=1,
            subsample_axis="Y",
        ),
        img,
        None,
        "CZYX",
    )
    np.random.seed(4)
    got = quiet(
        first,
        quiet(
            anisotropic_distortions, 2, psf, poisson_noise=True, gauss_sigma=1, subsample_axis="Y"
        ),
        da.from_array(img, chunks=(1, 3, 7, 7)),
        None,
        "CZYX",
    )
    assert np.array_equal(got[0].compute(), ref[0]) and got[2] == ref[2] == "CZYX"


def test_seeded_distortions_in_pipeline_independent_of_chunking():
    from caredask.rawdata import RawData
    from caredask.sampling.create import generate_training_data

    imgs = [image((6, 40, 36), s, scale=300) for s in (3, 4)]
    psf = np.ones((3, 3, 3))
    results = []
    for chunks in [(6, 40, 36), (2, 9, 13)]:
        tf = quiet(anisotropic_distortions, 2, psf, poisson_noise=True, gauss_sigma=2, seed=9)
        dimgs = [da.from_array(i, chunks=chunks) for i in imgs]
        raw = RawData.from_arrays(dimgs, dimgs, "ZYX")
        results.append(generate_training_data(raw, (4, 8, 8), 5, seed=1, transforms=[tf]))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
