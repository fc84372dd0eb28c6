"""caredask.preview: blockwise projections and eligible regions, boxes checked in the PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage as ndi

import caredask
from caredask import RawData, TrainingStore, generate_training_data
from caredask.cli.main import main
from caredask.errors import InputError
from caredask.masks.background import border_slices, filter_size
from caredask.visual.render import BOX, eligible_centres, project, project_numpy
from caredask.visual.sampled import _HEAD, preview_store
from caredask.visual.thresholds import preview_thresholds
from tests.strategies import regular_chunks

from .conftest import blob_pair

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), axes=st.sampled_from(["ZYX", "YXZ", "XZY", "YX", "CZYX"]))
def test_projection_twin_on_random_chunkings(data: Any, axes: str) -> None:
    shape = tuple(data.draw(st.integers(1, 14)) for _ in axes)
    chunks = data.draw(regular_chunks(shape))
    factor = data.draw(st.integers(1, 4))
    yx = (shape[axes.index("Y")], shape[axes.index("X")])
    if min(yx) < factor:
        factor = 1
    a = np.random.default_rng(0).random(shape)
    for arr in (a, a > 0.7):
        got = project(da.from_array(arr, chunks=chunks), axes, factor).compute()
        assert np.array_equal(got, project_numpy(arr, axes, factor))


def _eligible_numpy(y: np.ndarray, ps: tuple[int, ...], thr: Any, mask: Any) -> np.ndarray:
    """csbdeep's rule, whole image in memory."""
    m = ndi.maximum_filter(y.astype(np.float32), filter_size(ps), mode="constant") > thr
    if mask is not None:
        m &= ndi.minimum_filter(mask, ps, mode="constant", cval=False)
    out = np.zeros_like(m)
    b = border_slices(y.shape, ps)
    out[b] = m[b]
    return out


@SETTINGS
@given(data=st.data(), with_mask=st.booleans())
def test_eligible_centres_twin_on_random_chunkings(data: Any, with_mask: bool) -> None:
    shape = (data.draw(st.integers(6, 30)), data.draw(st.integers(6, 30)))
    ps = tuple(data.draw(st.integers(1, s)) for s in shape)
    chunks = data.draw(regular_chunks(shape))
    rng = np.random.default_rng(1)
    y = rng.integers(0, 100, shape).astype(np.uint16)
    mask = rng.random(shape) > 0.2 if with_mask else None
    thr = np.float32(data.draw(st.sampled_from([20.0, 80.0, 99.5])))
    m = None if mask is None else da.from_array(mask, chunks=chunks[::-1])
    got = eligible_centres(da.from_array(y, chunks=chunks), ps, thr, m).compute()
    assert np.array_equal(got, _eligible_numpy(y, ps, thr, mask))


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pv")
    for d in ("src", "tgt"):
        (base / d).mkdir()
    for i, shape in enumerate([(6, 90, 70), (6, 64, 100)]):
        x, y = blob_pair(shape, seed=i)
        tifffile.imwrite(base / "src" / f"im{i}.tif", x)
        tifffile.imwrite(base / "tgt" / f"im{i}.tif", y)
    raw = RawData.from_sources(base / "src", base / "tgt", "ZYX")
    generate_training_data(raw, (2, 12, 10), 9, seed=2, save_file=base / "t.zarr")
    return base


def _red(png: Path) -> set[tuple[int, int]]:
    a = np.asarray(Image.open(png).convert("RGB"))
    ys, xs = np.nonzero(np.all(a == BOX, axis=-1))
    return set(zip(xs.tolist(), ys.tolist(), strict=True))


def _outline(x0: int, y0: int, x1: int, y1: int) -> set[tuple[int, int]]:
    return {(x, y) for x in range(x0, x1 + 1) for y in (y0, y1)} | {
        (x, y) for y in range(y0, y1 + 1) for x in (x0, x1)
    }


@pytest.mark.parametrize("max_side", [384, 33])
def test_store_preview_boxes_at_recorded_coordinates(
    sampled: Path, tmp_path: Path, max_side: int
) -> None:
    store = TrainingStore(sampled / "t.zarr")
    png = tmp_path / "p.png"
    path, panels = preview_store(store, png, target=sampled / "tgt", axes="ZYX", max_side=max_side)
    assert path == png and Image.open(png).format == "PNG"
    starts, owner = store.patch_start, store.patch_image
    assert starts is not None and owner is not None
    expected: set[tuple[int, int]] = set()
    for i, panel in enumerate(panels):
        ox, oy = panel.origin
        w, h = panel.size
        s, f = panel.scale, panel.factor
        assert f == (1 if max_side == 384 else -(-100 // 33) if i else -(-90 // 33))
        for _, sy, sx in starts[owner == i]:
            x0, y0 = min(sx * s // f, w - 1), min(sy * s // f, h - 1)
            x1 = max(x0, min((sx + 10) * s // f - 1, w - 1))
            y1 = max(y0, min((sy + 12) * s // f - 1, h - 1))
            expected |= _outline(ox + x0, oy + y0, ox + x1, oy + y1)
    assert len(panels) == 2 and _red(png) == expected


def test_store_preview_tint_is_the_eligible_region(sampled: Path, tmp_path: Path) -> None:
    store = TrainingStore(sampled / "t.zarr")
    _, panels = preview_store(store, tmp_path / "p.png", target=sampled / "tgt", axes="ZYX")
    a = np.asarray(Image.open(tmp_path / "p.png").convert("RGB")).astype(int)
    rec = store.provenance["images"][1]
    y = tifffile.imread(sampled / "tgt" / "im1.tif")
    thr = np.float32(rec["threshold"])
    elig = project_numpy(_eligible_numpy(y, (2, 12, 10), thr, None), "ZYX", 1)
    p = panels[1]
    (ox, oy), (w, h) = p.origin, p.size
    region = a[oy : oy + h, ox : ox + w]
    tinted = (region[..., 1] - region[..., 0] == 115) | np.all(region == BOX, axis=-1)
    want = np.kron(elig, np.ones((p.scale, p.scale), bool))
    boxes = np.all(region == BOX, axis=-1)
    assert np.array_equal(tinted[~boxes], want[~boxes])


def test_never_overwrites_and_npz_has_no_coordinates(sampled: Path, tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    caredask.preview(sampled / "t.zarr", png, target=sampled / "tgt", axes="ZYX")
    before = png.read_bytes()
    with pytest.raises(InputError, match=r"p\.png exists; pass overwrite=True"):
        caredask.preview(sampled / "t.zarr", png)
    assert png.read_bytes() == before
    caredask.preview(sampled / "t.zarr", png, overwrite=True, max_images=1)
    assert png.read_bytes() != before
    X = np.zeros((2, 1, 4, 4), np.float32)
    np.savez(tmp_path / "d.npz", X=X, Y=X, axes=np.asarray("SCYX"))
    with pytest.raises(InputError, match="records no patch coordinates"):
        preview_store(tmp_path / "d.npz", tmp_path / "q.png")


def test_threshold_preview_without_patches(sampled: Path, tmp_path: Path) -> None:
    ts = [0.2, 0.4, 0.6]
    _, panels = preview_thresholds(sampled / "tgt", tmp_path / "t.png", ts, (2, 12, 10), axes="ZYX")
    a = np.asarray(Image.open(tmp_path / "t.png").convert("RGB")).astype(int)
    y = tifffile.imread(sampled / "tgt" / "im0.tif")
    p999 = np.percentile(y.astype(np.float32), 99.9)
    counts = []
    for t, p in zip(ts, panels[:3], strict=True):
        (ox, oy), (w, h) = p.origin, p.size
        tinted = a[oy : oy + h, ox : ox + w, 1] - a[oy : oy + h, ox : ox + w, 0] == 115
        thr = np.asarray(t * np.float32(p999))[()]
        elig = project_numpy(_eligible_numpy(y, (2, 12, 10), thr, None), "ZYX", p.factor)
        assert np.array_equal(tinted, np.kron(elig, np.ones((p.scale, p.scale), bool)))
        counts.append(int(tinted.sum()))
    assert counts[0] > counts[1] > counts[2] > 0
    with pytest.raises(InputError, match="needs patch_size"):
        caredask.preview(sampled / "tgt", tmp_path / "u.png", filter_threshold=0.3)


def test_cli_patches_preview_and_preview_command(
    sampled: Path, tmp_path: Path, capsys: Any
) -> None:
    out, png = tmp_path / "c.zarr", tmp_path / "c.png"
    args = ["patches", "--source", str(sampled / "src"), "--target", str(sampled / "tgt")]
    args += ["--axes", "ZYX", "--patch-size", "2", "12", "10", "-k", "5", "-q", "-o", str(out)]
    assert main([*args, "--preview", str(png)]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    assert len(_red(png)) > 0
    assert main(["preview", str(out), "-o", str(png)]) == 2
    assert "caredask: error: " in capsys.readouterr().err
    tgt = ["--target", str(sampled / "tgt"), "--axes", "ZYX"]
    assert main(["preview", str(out), "-o", str(png), "--overwrite", *tgt]) == 0
    thr = ["preview", str(sampled / "tgt"), "--axes", "ZYX", "--patch-size", "2", "12", "10"]
    thr += ["--filter-threshold", "0.2", "0.4", "0.6"]
    assert main([*thr, "-o", str(tmp_path / "t.png")]) == 0
    assert Image.open(tmp_path / "t.png").size[0] > 3 * 200
    assert main([*args[:-1], str(tmp_path / "d.npz"), "--preview", str(tmp_path / "x.png")]) == 2
    assert "--preview needs a .zarr" in capsys.readouterr().err


def test_cli_patches_preview_from_basepath(tmp_path: Path, capsys: Any) -> None:
    """BASEPATH layout: the targets are found next to the recorded sources."""
    for d in ("low", "GT"):
        (tmp_path / d).mkdir()
    x, y = blob_pair((4, 40, 36), seed=5)
    tifffile.imwrite(tmp_path / "low" / "a.tif", x)
    tifffile.imwrite(tmp_path / "GT" / "a.tif", y)
    png = tmp_path / "b.png"
    args = ["patches", str(tmp_path), "--axes", "ZYX", "--patch-size", "2", "8", "8", "-k", "4"]
    assert main([*args, "-q", "-o", str(tmp_path / "b.zarr"), "--preview", str(png)]) == 0
    store = TrainingStore(tmp_path / "b.zarr")
    starts = store.patch_start
    assert starts is not None
    s = 256 // 40 + 1  # the panel's upscaling of a 40-pixel-high image
    expected: set[tuple[int, int]] = set()
    for _, sy, sx in starts:
        expected |= _outline(sx * s, _HEAD + sy * s, (sx + 8) * s - 1, _HEAD + (sy + 8) * s - 1)
    assert _red(png) == expected
