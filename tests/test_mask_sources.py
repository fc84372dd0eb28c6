"""Masks from any source (TIFF, Zarr, OME-Zarr labels) against csbdeep's pixel-mask path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from csbdeep import data as cd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.writer import write_image, write_labels

import caredask.csbdeep as cc
from caredask import RawData, open_images
from caredask.errors import InputError
from caredask.masks.pixel import eligible_pixels, label_mask
from tests.strategies import regular_chunks

from .conftest import blob_pair

SHAPES = [(48, 40), (56, 44)]


def _labels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Bands of labels 1, 2, 3 (top to bottom), with a random vertical stripe of background."""
    lab = np.repeat(np.arange(3, dtype=np.uint8) + 1, -(-shape[0] // 3))[: shape[0]]
    lab = np.broadcast_to(lab[:, None], shape).copy()
    c = np.random.RandomState(seed).randint(0, shape[1] - 12)
    lab[:, c : c + 12] = 0
    return lab


def _csbdeep(xs: list, ys: list, masks: list, axes: str, ps: Any, k: int, seed: int = 0) -> Any:
    n = len(xs)
    items = [(x, y, axes, m) for x, y, m in zip(xs, ys, masks, strict=True)]
    np.random.seed(seed)
    return cd.create_patches(cd.RawData(lambda: iter(items), n, "m"), ps, k, verbose=False)


def _caredask(raw: RawData, ps: Any, k: int, seed: int = 0) -> Any:
    np.random.seed(seed)
    return cc.create_patches(raw, ps, k, verbose=False)


def _same(a: Any, b: Any) -> None:
    assert a[2] == b[2]
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert np.array_equal(np.asarray(a[1]), np.asarray(b[1]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    values=st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=1, max_size=3)),
)
def test_eligible_pixels_twin_on_random_chunkings(data: Any, values: Any) -> None:
    shape = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)))
    chunks = data.draw(regular_chunks(shape))
    lab = np.random.default_rng(0).integers(0, 5, shape).astype(np.uint16)
    got = eligible_pixels(da.from_array(lab, chunks=chunks), values).compute()
    want = lab != 0 if values is None else np.isin(lab, values)
    assert got.dtype == bool and np.array_equal(got, want)
    assert np.array_equal(label_mask(lab, None if values is None else tuple(values)), want)


def _tiff_folders(tmp_path: Path) -> tuple[list, list, list]:
    xs, ys, labs = [], [], []
    for d in ("src", "tgt", "mask"):
        (tmp_path / d).mkdir()
    for i, shape in enumerate(SHAPES):
        x, y = blob_pair(shape, seed=i)
        lab = _labels(shape, seed=10 + i)
        for d, a in (("src", x), ("tgt", y), ("mask", lab)):
            tifffile.imwrite(tmp_path / d / f"img{i}.tif", a)
        xs.append(x), ys.append(y), labs.append(lab)
    return xs, ys, labs


def test_tiff_mask_folder_matches_csbdeep(tmp_path: Path) -> None:
    xs, ys, labs = _tiff_folders(tmp_path)
    ref = _csbdeep(xs, ys, [lab != 0 for lab in labs], "YX", (8, 8), 20)
    raw = RawData.from_sources(tmp_path / "src", tmp_path / "tgt", "YX", mask=tmp_path / "mask")
    _same(_caredask(raw, (8, 8), 20), ref)
    # paired by name, whatever order the masks are listed in
    files = [str(tmp_path / "mask" / "img1.tif"), str(tmp_path / "mask" / "img0.tif")]
    raw = RawData.from_sources(tmp_path / "src", tmp_path / "tgt", "YX", mask=files)
    _same(_caredask(raw, (8, 8), 20), ref)


def test_zarr_label_values_and_channel_broadcast_match_csbdeep(tmp_path: Path) -> None:
    pairs = [blob_pair(s, seed=3 + i, channels=2) for i, s in enumerate(SHAPES)]
    labs = [_labels(s, seed=20 + i) for i, s in enumerate(SHAPES)]
    g = zarr.open_group(tmp_path / "labels.zarr", mode="w")
    for i, lab in enumerate(labs):
        g.create_array(str(i), data=lab, chunks=(16, 16), dimension_names=["y", "x"])
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    masks = [np.broadcast_to(np.isin(m, [1, 3]), x.shape) for m, x in zip(labs, xs, strict=True)]
    ref = _csbdeep(xs, ys, masks, "CYX", (2, 8, 8), 15)
    raw = RawData.from_sources(
        [da.from_array(x, chunks=(1, 20, 17)) for x in xs],
        ys,
        "CYX",
        mask=str(tmp_path / "labels.zarr"),
        mask_values=[1, 3],
    )
    _same(_caredask(raw, (2, 8, 8), 15), ref)


def _ome(path: Path, img: np.ndarray, fmt: Any, label: np.ndarray | None = None) -> None:
    store = parse_url(str(path), mode="w", fmt=fmt).store
    root = zarr.group(store=store, zarr_format=fmt.zarr_format, overwrite=True)
    write_image(img, root, axes="yx", fmt=fmt, scale_factors=[2])
    if label is not None:
        write_labels(label, root, name="cells", axes="yx", fmt=fmt, scale_factors=[2])


def _label_level(path: Path, level: int) -> np.ndarray:
    lab = zarr.open_group(path / "labels" / "cells", mode="r")
    attrs = dict(lab.attrs)
    ms = (attrs.get("ome") or attrs)["multiscales"][0]
    return np.asarray(lab[ms["datasets"][level]["path"]][...])


@pytest.mark.parametrize(("fmt", "level"), [(FormatV05(), 0), (FormatV04(), 1)])
def test_ngff_labels_from_ome_zarr_py_match_csbdeep(tmp_path: Path, fmt: Any, level: int) -> None:
    srcs, tgts, masks, xs, ys = [], [], [], [], []
    for i, shape in enumerate([(96, 80), (104, 88)]):
        x, y = blob_pair(shape, seed=30 + i)
        s, t = tmp_path / f"s{i}.ome.zarr", tmp_path / f"t{i}.ome.zarr"
        # labels on the source of the first pair, on the target of the second
        _ome(s, x, fmt, _labels(shape, 40 + i) if i == 0 else None)
        _ome(t, y, fmt, _labels(shape, 40 + i) if i == 1 else None)
        srcs.append(str(s)), tgts.append(str(t))
        xs.append(open_images(str(s), level=level)[0].data.compute())
        ys.append(open_images(str(t), level=level)[0].data.compute())
        masks.append(_label_level(s if i == 0 else t, level) != 0)
    assert xs[0].shape == masks[0].shape == tuple(n // 2**level for n in (96, 80))
    ref = _csbdeep(xs, ys, masks, "YX", (8, 8), 12)
    # s0/t0 differ in name: lists of files pair by name unless asked to pair by position
    raw = RawData.from_sources(srcs, tgts, pair_by="position", mask_label="cells", level=level)
    _same(_caredask(raw, (8, 8), 12), ref)
    # the label image itself as a mask source (an OME-Zarr image; level= applies to it too)
    one = _csbdeep(xs[:1], ys[:1], masks[:1], "YX", (8, 8), 12)
    lab_src = str(Path(srcs[0]) / "labels" / "cells")
    raw = RawData.from_sources(srcs[0], tgts[0], mask=lab_src, level=level)
    _same(_caredask(raw, (8, 8), 12), one)
    with pytest.raises(InputError, match=r"no NGFF label image 'nuclei'.*s0\.ome\.zarr"):
        RawData.from_sources(srcs, tgts, pair_by="position", mask_label="nuclei")


def test_mask_shape_mismatch_names_both(tmp_path: Path) -> None:
    _tiff_folders(tmp_path)
    tifffile.imwrite(tmp_path / "mask" / "img1.tif", np.ones((10, 10), np.uint8))
    with pytest.raises(InputError, match=r"mask .*mask/img1\.tif \(shape \(10, 10\).*its image "):
        RawData.from_sources(tmp_path / "src", tmp_path / "tgt", "YX", mask=tmp_path / "mask")


def test_mask_argument_errors(tmp_path: Path) -> None:
    _tiff_folders(tmp_path)
    src, tgt = tmp_path / "src", tmp_path / "tgt"
    with pytest.raises(InputError, match="not both"):
        RawData.from_sources(src, tgt, "YX", mask=tmp_path / "mask", mask_label="cells")
    with pytest.raises(InputError, match="mask_values needs"):
        RawData.from_sources(src, tgt, "YX", mask_values=[1])
    with pytest.raises(InputError, match="1 masks for 2 images"):
        RawData.from_sources(src, tgt, "YX", mask=[np.ones(SHAPES[0], bool)])


def test_building_reads_no_mask_pixels(tmp_path: Path, no_compute: Any) -> None:
    _tiff_folders(tmp_path)
    raw = RawData.from_sources(tmp_path / "src", tmp_path / "tgt", "YX", mask=tmp_path / "mask")
    x, _, _, m = next(iter(raw.generator()))
    assert isinstance(m, da.Array) and m.dtype == bool and m.shape == x.shape


def test_unmasked_run_differs(tmp_path: Path) -> None:
    """The mask changes the result (so the equalities above test the mask path)."""
    xs, ys, labs = _tiff_folders(tmp_path)
    ref = _csbdeep(xs, ys, [lab != 0 for lab in labs], "YX", (8, 8), 20)
    plain = _caredask(RawData.from_sources(tmp_path / "src", tmp_path / "tgt", "YX"), (8, 8), 20)
    assert not np.array_equal(plain[0], ref[0])


def test_cli_patches_mask_and_label_values(tmp_path: Path, capsys: Any) -> None:
    from caredask.cli.main import main

    xs, ys, labs = _tiff_folders(tmp_path)
    out = tmp_path / "m.npz"
    base = ["patches", "--source", str(tmp_path / "src"), "--target", str(tmp_path / "tgt")]
    opts = ["--axes", "YX", "--patch-size", "8", "8", "-k", "10", "--seed", "4", "-q"]
    args = [*base, *opts, "--mask", str(tmp_path / "mask"), "--mask-values", "1", "3"]
    assert main([*args, "-o", str(out)]) == 0
    ref = _csbdeep(xs, ys, [np.isin(lab, [1, 3]) for lab in labs], "YX", (8, 8), 10, seed=4)
    f = np.load(out)
    assert np.array_equal(f["X"], ref[0]) and np.array_equal(f["Y"], ref[1])
    assert main([*base, *opts, "--mask-values", "1", "-o", str(tmp_path / "n.npz")]) == 2
    assert "caredask: error: --mask-values/--mask-axes need --mask" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "mask" / "img0.tif", np.ones((5, 5), np.uint8))
    assert main([*args, "-o", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caredask: error: mask ") and "img0.tif" in err and "(48, 40)" in err


def test_cli_dataset_mask_recorded_and_rebuilt(tmp_path: Path) -> None:
    from caredask.cli.main import main

    _tiff_folders(tmp_path)
    out = tmp_path / "ds"
    args = ["dataset", "--source", str(tmp_path / "src"), "--target", str(tmp_path / "tgt")]
    args += ["--axes", "YX", "-o", str(out), "--patch-size", "8", "8", "-k", "6", "-q"]
    args += ["--test-fraction", "0.5", "--preview", "0", "--mask", str(tmp_path / "mask")]
    assert main(args) == 0
    import json

    m = json.loads((out / "manifest.json").read_text())
    assert m["patches"]["mask"]["source"] == str(tmp_path / "mask")
    (train_key,) = m["split"]["train"]
    i = int(Path(train_key).stem[-1])
    rebuilt = tmp_path / "re.npz"
    manifest = str(out / "manifest.json")
    assert main(["patches", "--manifest", manifest, "-o", str(rebuilt), "-q"]) == 0
    a, b = np.load(out / "training_data.npz"), np.load(rebuilt)
    assert np.array_equal(a["X"], b["X"])
    # the dataset's patches are those of the masked training image
    from caredask import generate_training_data

    X, _, _ = generate_training_data(
        RawData.from_sources(
            tmp_path / "src" / f"img{i}.tif",
            tmp_path / "tgt" / f"img{i}.tif",
            "YX",
            mask=tmp_path / "mask" / f"img{i}.tif",
        ),
        (8, 8),
        6,
        seed=0,
    )
    assert np.array_equal(a["X"], X)
