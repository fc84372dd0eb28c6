"""Tests of caredask.dataset.synthetic: determinism, slab independence, TIFF output, realism."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import stats

from caredask.dataset import synthetic
from caredask.dataset.synthetic import synthetic_pair, write_tiff_pairs
from caredask.errors import InputError


def _eligible_fraction(target: np.ndarray, patch: tuple[int, ...]) -> float:
    from csbdeep.data import no_background_patches

    mask = no_background_patches(0.4, 99.9)((target, target), patch)
    border = tuple(
        slice(p // 2, d - p + p // 2 + 1) for p, d in zip(patch, target.shape, strict=True)
    )
    return float(mask[border].mean())


@pytest.mark.parametrize("shape", [(96, 80), (5, 40, 48)])
def test_deterministic_dtype_shape(shape: tuple[int, ...]) -> None:
    src, tgt = synthetic_pair(shape, seed=3)
    src2, tgt2 = synthetic_pair(shape, seed=3)
    assert src.dtype == tgt.dtype == np.uint16
    assert src.shape == tgt.shape == shape
    assert np.array_equal(src, src2) and np.array_equal(tgt, tgt2)
    other, _ = synthetic_pair(shape, seed=4)
    assert not np.array_equal(src, other)


def test_dense_has_more_foreground() -> None:
    _, sparse = synthetic_pair((256, 256), seed=0)
    _, dense = synthetic_pair((256, 256), seed=0, dense=True)
    assert dense.mean() > sparse.mean() + 50


@pytest.mark.parametrize("slab_bytes", [1, 3 * 4 * 64 * 72, 7 * 4 * 64 * 72])
def test_slabwise_equals_whole_volume(monkeypatch: pytest.MonkeyPatch, slab_bytes: int) -> None:
    shape = (20, 64, 72)
    whole = synthetic_pair(shape, seed=11, dense=True)
    monkeypatch.setattr(synthetic, "_SLAB_BYTES", slab_bytes)
    assert synthetic._slab_planes(shape) < shape[0]
    sliced = synthetic_pair(shape, seed=11, dense=True)
    assert np.array_equal(whole[0], sliced[0])
    assert np.array_equal(whole[1], sliced[1])


def test_noise_statistics() -> None:
    src, tgt = synthetic_pair((256, 256), seed=5)
    blobs = synthetic._render_blobs(
        synthetic._blob_params((256, 256), 5, False), (1, 256, 256), 0, 1
    )[0]
    bg = blobs < 1e-3
    assert abs(tgt[bg].mean() - 100) < 0.5 and abs(tgt[bg].std() - 3) < 0.3
    # source background: Poisson(12.5) * 8 + N(0, 30) + 50 -> mean 150, var 64 * 12.5 + 900
    assert abs(src[bg].mean() - 150) < 2 and abs(src[bg].var() - 1700) < 120


def test_poisson_table_is_poisson() -> None:
    draws = synthetic._poisson_const(np.random.default_rng(0), 12.5, 400_000)
    counts = np.bincount(draws)
    expected = stats.poisson.pmf(np.arange(counts.size), 12.5) * draws.size
    keep = expected > 5
    res = stats.chisquare(counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum())
    assert res.pvalue > 1e-4


@pytest.mark.parametrize(
    ("shape", "patch"), [((768, 768), (128, 128)), ((32, 256, 256), (16, 64, 64))]
)
def test_eligible_fraction(shape: tuple[int, ...], patch: tuple[int, ...]) -> None:
    _, sparse = synthetic_pair(shape, seed=1)
    _, dense = synthetic_pair(shape, seed=1, dense=True)
    assert 0.15 <= _eligible_fraction(sparse, patch) <= 0.6
    assert _eligible_fraction(dense, patch) > 0.85


@pytest.mark.parametrize(
    ("shape", "axes", "imagej"),
    [((40, 48), "YX", True), ((6, 40, 48), "ZYX", True), ((6, 40, 48), "ZYX", False)],
)
def test_write_tiff_pairs(tmp_path, shape: tuple[int, ...], axes: str, imagej: bool) -> None:
    paths = write_tiff_pairs(tmp_path, 2, shape, seed=7, imagej=imagej, compression=None)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "low/img_000.tif",
        "low/img_001.tif",
    ]
    assert sorted(p.name for p in (tmp_path / "GT").iterdir()) == ["img_000.tif", "img_001.tif"]
    for i, path in enumerate(paths):
        src, tgt = synthetic_pair(shape, seed=7 + i)
        for file, expected in [(path, src), (tmp_path / "GT" / path.name, tgt)]:
            with tifffile.TiffFile(file) as tif:
                assert tif.is_imagej == imagej
                assert tif.series[0].axes == axes
                assert np.array_equal(tif.asarray(), expected)


def test_write_tiff_pairs_options(tmp_path) -> None:
    paths = write_tiff_pairs(
        tmp_path,
        1,
        (4, 32, 32),
        seed=2,
        dense=True,
        source_dir="src",
        target_dir="tgt",
        compression="zlib",
        axes="TYX",
    )
    assert paths == [tmp_path / "src" / "img_000.tif"]
    with tifffile.TiffFile(tmp_path / "tgt" / "img_000.tif") as tif:
        assert tif.series[0].axes == "TYX"
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert np.array_equal(tif.asarray(), synthetic_pair((4, 32, 32), seed=2, dense=True)[1])


def test_errors(tmp_path) -> None:
    with pytest.raises(InputError, match=r"2D .* or 3D"):
        synthetic_pair((4, 4, 4, 4), seed=0)
    with pytest.raises(InputError, match="positive sizes"):
        synthetic_pair((0, 4), seed=0)
    with pytest.raises(InputError, match="non-negative int"):
        synthetic_pair((8, 8), seed=-1)
    with pytest.raises(InputError, match="n_images must be a positive int"):
        write_tiff_pairs(tmp_path, 0, (8, 8))
    with pytest.raises(InputError, match="axes 'ZYX' do not match"):
        write_tiff_pairs(tmp_path, 1, (8, 8), axes="ZYX")
