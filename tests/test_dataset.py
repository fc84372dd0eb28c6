"""Dataset management: index, split by image, exact dataset statistics, manifest, preview, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from caredask.cli.main import main as cli
from caredask.dataset import (
    Index,
    Manifest,
    Screening,
    build_index,
    create_dataset,
    dataset_normalization,
    dataset_statistics,
    rebuild,
    split_groups,
    training_digest,
    write_preview,
)
from caredask.dataset import index as index_mod
from caredask.dataset.index import expand_sources, unit_digest
from caredask.dataset.stats import block_moments, combine_moments, moments_graph
from caredask.dataset.synthetic import write_tiff_pairs
from caredask.errors import FormatError, InputError, SourceNotFoundError
from caredask.statistics.normalize import FixedRangeNormalization
from tests.strategies import regular_chunks

from .conftest import blob_pair

Q = [0.1, 1, 2, 3, 50, 97, 99, 99.5, 99.8, 99.9]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pairs(folder: Path, n: int, shape: tuple[int, ...] = (64, 64), seed: int = 0) -> Path:
    write_tiff_pairs(folder, n, shape, seed=seed, dense=True)
    return folder


# --------------------------------------------------------------------------- index


def test_index_ids_metadata_and_round_trip(tmp_path: Path) -> None:
    _pairs(tmp_path, 3, (40, 48))
    (tmp_path / "low" / "notes.txt").write_text("not an image")  # not picked up from folders
    idx = build_index(tmp_path / "low", index_path=tmp_path / "index.json")
    assert [Path(r.path).name for r in idx.records] == [f"img_00{i}.tif" for i in range(3)]
    for r in idx.records:
        assert r.ok and r.reason is None
        assert r.sha256 == _sha(Path(r.path)) and r.id == r.sha256[:16]
        assert (r.shape, r.axes, r.dtype, r.frames, r.channels) == (
            (40, 48),
            "YX",
            "uint16",
            None,
            1,
        )
    data = json.loads((tmp_path / "index.json").read_text())
    assert data["schema"] == "caredask.index/1"
    assert Index.load(tmp_path / "index.json").records == idx.records


def test_index_incremental_rehashes_only_changed(tmp_path: Path, monkeypatch) -> None:
    _pairs(tmp_path, 4, (32, 32))
    ipath = tmp_path / "index.json"
    first = build_index(tmp_path / "low", index_path=ipath)
    assert len(first.hashed) == 4
    calls: list[str] = []
    real = index_mod._file_sha256
    monkeypatch.setattr(index_mod, "_file_sha256", lambda p: calls.append(p) or real(p))
    again = build_index(tmp_path / "low", index_path=ipath)
    assert again.hashed == [] and calls == [] and again.records == first.records
    touched = tmp_path / "low" / "img_002.tif"
    st_ = touched.stat()
    os.utime(touched, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    third = build_index(tmp_path / "low", index_path=ipath)
    assert third.hashed == [str(touched)] and calls == [str(touched)]
    assert [r.id for r in third.records] == [r.id for r in first.records]  # same content
    (tmp_path / "low" / "img_003.tif").unlink()
    shutil.copy(tmp_path / "GT" / "img_000.tif", tmp_path / "low" / "img_001.tif")
    fourth = build_index(tmp_path / "low", index_path=ipath)
    assert fourth.removed == [str(tmp_path / "low" / "img_003.tif")]
    assert fourth.records[1].id == _sha(tmp_path / "GT" / "img_000.tif")[:16]


def test_index_screening_reasons(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (
        ("a_good", (4, 32, 32)),
        ("b_short", (2, 32, 32)),
        ("c_small", (4, 8, 8)),
        ("d_2d", (32, 32)),
    ):
        data = rng.integers(0, 99, shape, dtype=np.uint16)
        tifffile.imwrite(d / f"{name}.tif", data, photometric="minisblack")
    (d / "e_broken.tif").write_bytes(b"II*\0garbage")
    screen = Screening(ndim=3, patch_size=(1, 16, 16), min_frames=3)
    ipath = tmp_path / "i.json"
    idx = build_index(d, "TYX", index_path=ipath, screening=screen)
    by = {Path(r.path).name: r for r in idx.records}
    assert by["a_good.tif"].ok and by["a_good.tif"].frames == 4
    assert "2 frames, fewer than min_frames=3" in by["b_short.tif"].reason
    assert "smaller than the patch size" in by["c_small.tif"].reason
    assert "axes 'TYX' have 3 letters" in by["d_2d.tif"].reason
    assert "not readable as an image (FormatError" in by["e_broken.tif"].reason
    assert by["e_broken.tif"].id == _sha(d / "e_broken.tif")[:16]  # rejected, but identified
    assert {r.status for r in idx.rejected} == {"rejected"} and len(idx.rejected) == 4
    # new screening parameters: re-screened from metadata, nothing hashed again
    relaxed = build_index(d, "TYX", index_path=ipath, screening=Screening(min_frames=2))
    assert relaxed.hashed == []
    assert {Path(r.path).name for r in relaxed.accepted} == {
        "a_good.tif",
        "b_short.tif",
        "c_small.tif",
    }


def test_index_zarr_store_is_one_unit_with_content_id(tmp_path: Path) -> None:
    import zarr

    store = tmp_path / "data" / "img.zarr"
    z = zarr.open_array(store, mode="w", shape=(20, 20), chunks=(10, 10), dtype="uint16")
    z[:] = np.arange(400, dtype=np.uint16).reshape(20, 20)
    idx = build_index(tmp_path / "data", "YX")
    assert len(idx.records) == 1 and idx.records[0].ok and idx.records[0].path == str(store)
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    assert unit_digest(copy) == unit_digest(store)  # content, not location or mtime
    zarr.open_array(copy, mode="r+")[0, 0] = 7
    assert unit_digest(copy) != unit_digest(store)


def test_expand_sources_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="no such file or directory"):
        expand_sources([tmp_path / "nope"])


def test_index_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(FormatError, match=r"is not 'caredask\.index/1'"):
        Index.load(tmp_path / "x.json")


# --------------------------------------------------------------------------- split


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 30),
    frac=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**31),
    n_groups=st.integers(1, 6),
)
def test_split_groups_disjoint_seeded(n: int, frac: float, seed: int, n_groups: int) -> None:
    labels = [f"g{i % n_groups}" if n_groups < n else f"img{i}" for i in range(n)]
    groups = len(set(labels))
    expected = max(1, round(frac * groups)) if frac > 0 else 0
    if expected >= groups:
        with pytest.raises(InputError, match="leaves no training images"):
            split_groups(labels, frac, seed)
        return
    train, test = split_groups(labels, frac, seed)
    assert sorted(train + test) == list(range(n)) and not set(train) & set(test)
    assert {labels[i] for i in train}.isdisjoint({labels[i] for i in test})  # whole groups
    assert len({labels[i] for i in test}) == expected
    assert split_groups(labels[::-1], frac, seed)[1] == sorted(n - 1 - i for i in test)


def test_group_labels_regex_and_duplicates() -> None:
    from caredask.dataset.index import ImageRecord
    from caredask.dataset.manifest import _group_labels

    def rec(i: str) -> ImageRecord:
        return ImageRecord(i, f"/x/{i}", "ok")

    keys = ["m1_t0.tif", "m1_t1.tif", "m2_t0.tif", "m3_t0.tif", "m4_t0.tif"]
    src = [rec("a"), rec("b"), rec("c"), rec("d"), rec("c")]  # m4 duplicates m2's source
    pairs = [(k, s, rec(f"t{i}")) for i, (k, s) in enumerate(zip(keys, src, strict=True))]
    labels = _group_labels(pairs, r"^(m\d)_")
    assert labels == ["m1", "m1", "m2", "m3", "m2"]
    assert _group_labels(pairs, None) == ["a", "b", "c", "d", "c"]


def test_split_bad_fraction() -> None:
    with pytest.raises(InputError, match=r"must be in \[0, 1\)"):
        split_groups(["a", "b"], 1.0, 0)


# --------------------------------------------------------------------------- statistics


@st.composite
def _stat_case(draw):
    dtype = draw(
        st.sampled_from(
            ["uint8", "uint16", "int16", "int32", "uint32", "float32", "float64", "int64"]
        )
    )
    channels = draw(st.sampled_from([None, 1, 2]))
    n_img = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    imgs, darrs = [], []
    for _ in range(n_img):
        shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
        if channels is not None:
            shape = (channels, *shape)
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        if info is not None:
            lo, hi = max(info.min, -(2**40)), min(info.max, 2**40)
            a = rng.integers(lo, hi, shape, dtype=dtype, endpoint=True)
        else:
            a = (rng.normal(0, 1000, shape) * rng.choice([1, 1e-3], shape)).astype(dtype)
        imgs.append(a)
        darrs.append(da.from_array(a, chunks=draw(regular_chunks(shape))))
    return imgs, darrs, "CYX" if channels else "YX"


@settings(max_examples=60, deadline=None)
@given(_stat_case())
def test_dataset_statistics_exact_vs_numpy(case) -> None:
    imgs, darrs, axes = case
    (st_,) = dataset_statistics([darrs], axes, Q)
    n_c = imgs[0].shape[0] if axes == "CYX" else 1
    assert st_.channels == n_c
    for c in range(n_c):
        pool = np.concatenate([(a[c] if axes == "CYX" else a).ravel() for a in imgs])
        assert np.array_equal(st_.percentiles[:, c], np.percentile(pool, Q))
        assert st_.min[c] == pool.min() and st_.max[c] == pool.max()
        assert st_.min.dtype == pool.dtype and st_.n_voxels == pool.size
        assert np.allclose(st_.mean[c], pool.mean(dtype=np.float64), rtol=1e-12, atol=0)
        assert np.allclose(st_.std[c], pool.std(dtype=np.float64), rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_block_moments_twin_chunk_independent(data) -> None:
    dtype = data.draw(st.sampled_from(["uint16", "int16", "int32", "uint32", "float32"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    n = data.draw(st.integers(1, 300))
    a = rng.integers(-(2**31) if dtype == "int32" else 0, 2**15, n).astype(dtype)
    whole = combine_moments(block_moments(a)[None, :])
    chunk = data.draw(st.integers(1, n))
    rows = moments_graph(da.from_array(a, chunks=chunk)).compute()
    blocked = combine_moments(rows.reshape(-1, 3 if dtype == "float32" else 5))
    if dtype == "float32":
        assert blocked[0] == whole[0] and np.allclose(blocked[1:], whole[1:], rtol=1e-12)
    else:  # exact integer sums: identical whatever the chunking
        assert blocked == whole
        assert whole[1] == float(np.mean(a.astype(object)))


def test_statistics_graph_builds_without_computing(no_compute) -> None:
    flat = da.reshape_blockwise(da.ones((40, 30), chunks=(7, 9), dtype="uint16"), (-1,))
    g = moments_graph(flat)
    assert g.shape == (5 * flat.numblocks[0],) and g.dtype == np.int64


def test_statistics_errors() -> None:
    a, b = da.zeros((2, 4, 4), dtype="uint16"), da.zeros((3, 4, 4), dtype="uint16")
    with pytest.raises(InputError, match="different channel counts"):
        dataset_statistics([[a, b]], "CYX")
    with pytest.raises(InputError, match="has no images"):
        dataset_statistics([[]], "YX")


def test_dataset_normalization_uses_pooled_percentiles() -> None:
    x, y = blob_pair((30, 40), 1, channels=2)
    sx, sy = dataset_statistics([[x], [y]], "CYX", Q)
    norm = dataset_normalization(sx, sy, 2, 99.8)
    assert isinstance(norm, FixedRangeNormalization)
    for c in range(2):
        assert norm.x_lo[c] == np.percentile(x[c], 2) and norm.y_hi[c] == np.percentile(y[c], 99.8)
    px, _ = norm(x[None], y[None], None, None, None, 0)
    lo, hi = np.float32(np.percentile(x[0], 2)), np.float32(np.percentile(x[0], 99.8))
    expect = (x[0].astype(np.float32) - lo) / (hi - lo + np.float32(1e-20))
    assert px.dtype == np.float32 and np.array_equal(px[0, 0], expect)
    with pytest.raises(InputError, match="percentile 5 was not computed"):
        dataset_normalization(sx, sy, 5, 99.8)


# --------------------------------------------------------------------------- datasets


def _make(tmp_path: Path, **kw):
    base = _pairs(tmp_path / "in", 5, (64, 64))
    args = {"patch_size": (32, 32), "n_patches_per_image": 6, "test_fraction": 0.4, "seed": 3}
    args.update(kw)
    return create_dataset(base / "low", base / "GT", "YX", output=tmp_path / "ds", **args)


def _train_images(res, stream: str) -> list[np.ndarray]:
    return [tifffile.imread(p[stream]["path"]) for p in res.manifest.train_pairs]


def test_create_dataset_split_stats_no_leakage(tmp_path: Path) -> None:
    res = _make(tmp_path, normalization=None, patch_filter=None)
    d = res.manifest.data
    assert d["schema"] == "caredask.dataset/1"
    train, test = d["split"]["train"], d["split"]["test"]
    assert len(test) == 2 and len(train) == 3 and not set(train) & set(test)
    assert sorted(train + test) == sorted(p["key"] for p in d["inputs"]["pairs"])
    for stream in ("source", "target"):
        pool = np.concatenate([a.ravel() for a in _train_images(res, stream)])
        s = res.manifest.statistics(stream)
        assert np.array_equal(s.percentiles[:, 0], np.percentile(pool, Q))
        assert s.min[0] == pool.min() and s.max[0] == pool.max() and s.n_voxels == pool.size
        assert np.allclose(s.mean[0], pool.mean(dtype=np.float64), rtol=1e-12)
        assert np.allclose(s.std[0], pool.std(dtype=np.float64), rtol=1e-12)
    # every (raw, unnormalised) source patch is a window of a training image, none of a test one
    win = np.lib.stride_tricks.sliding_window_view
    train_w = [win(a, (32, 32)) for a in _train_images(res, "source")]
    test_w = [win(tifffile.imread(p["source"]["path"]), (32, 32)) for p in res.manifest.test_pairs]
    for patch in np.asarray(res.X)[:, 0]:
        assert any((w == patch).all(axis=(-2, -1)).any() for w in train_w)
        assert not any((w == patch).all(axis=(-2, -1)).any() for w in test_w)
    assert res.preview is not None and res.preview.name == "preview.png"
    assert (tmp_path / "ds" / "index.json").is_file()


def test_manifest_round_trip_and_rebuild_identical(tmp_path: Path) -> None:
    res = _make(tmp_path, normalization="dataset")
    mpath = tmp_path / "ds" / "manifest.json"
    m = Manifest.load(mpath)
    assert m.data == json.loads(json.dumps(res.manifest.data))
    assert m.data["patches"]["normalization"] == {"mode": "dataset", "pmin": 1.0, "pmax": 99.8}
    norm = m.normalization()
    assert np.array_equal(norm.x_lo, m.statistics("source").value(1.0))
    X, Y, axes = rebuild(mpath, tmp_path / "again.npz")
    f1, f2 = np.load(tmp_path / "ds" / "training_data.npz"), np.load(tmp_path / "again.npz")
    assert np.array_equal(f1["X"], f2["X"]) and np.array_equal(f1["Y"], f2["Y"])
    assert f1["X"].tobytes() == f2["X"].tobytes() and str(f2["axes"]) == axes
    assert training_digest(X, Y, axes) == m.data["patches"]["content_sha256"]
    with pytest.raises(InputError, match="exists; pass overwrite=True"):
        rebuild(mpath)
    with pytest.raises(InputError, match="already holds a dataset"):
        _make(tmp_path)
    src = Path(m.train_pairs[0]["source"]["path"])
    arr = tifffile.imread(src)
    arr[0, 0] ^= 1
    tifffile.imwrite(src, arr)
    with pytest.raises(InputError, match="content changed since the manifest"):
        rebuild(mpath, tmp_path / "third.npz")


def test_rebuild_zarr_identical(tmp_path: Path) -> None:
    res = _make(tmp_path, save_file="td.zarr", normalization="percentile")
    X, Y, axes = rebuild(tmp_path / "ds" / "manifest.json", tmp_path / "re.zarr")
    assert np.array_equal(np.asarray(X), np.asarray(res.X))
    assert training_digest(X, Y, axes) == res.manifest.data["patches"]["content_sha256"]


def test_excluded_pairs_have_reasons(tmp_path: Path) -> None:
    base = _pairs(tmp_path / "in", 4, (64, 64))
    (base / "GT" / "img_003.tif").unlink()
    tifffile.imwrite(base / "GT" / "img_002.tif", np.zeros((64, 48), np.uint16))
    tifffile.imwrite(base / "low" / "img_001.tif", np.zeros((16, 16), np.uint16))
    res = create_dataset(
        base / "low",
        base / "GT",
        "YX",
        output=tmp_path / "ds",
        patch_size=(32, 32),
        n_patches_per_image=4,
        test_fraction=0,
        preview=0,
        patch_filter=None,
    )
    ex = {e["key"]: e["reason"] for e in res.manifest.data["inputs"]["excluded"]}
    assert ex["img_003.tif"] == "no target image of this name"
    assert "differ in shape or axes" in ex["img_002.tif"]
    assert (
        "source rejected" in ex["img_001.tif"]
        and "smaller than the patch size" in ex["img_001.tif"]
    )
    assert res.manifest.data["split"]["train"] == ["img_000.tif"] and res.preview is None


# --------------------------------------------------------------------------- preview


def test_preview_never_overwrites(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    X = rng.random((10, 2, 5, 16, 16)).astype(np.float32)
    Y = X * 2
    p0 = write_preview(X, Y, "SCZYX", tmp_path / "preview.png", n=4)
    before = p0.read_bytes()
    p1 = write_preview(X, Y, "SCZYX", tmp_path / "preview.png", n=3, seed=1)
    assert (p0.name, p1.name) == ("preview.png", "preview-1.png") and p0.read_bytes() == before
    with pytest.raises(InputError, match="exists"):
        write_preview(X, Y, "SCZYX", tmp_path / "preview.png", if_exists="error")
    p2 = write_preview(X, Y, "SCZYX", tmp_path / "preview.png", n=2, if_exists="overwrite")
    assert p2 == p0 and p0.read_bytes() != before
    with Image.open(p0) as im:
        assert im.format == "PNG" and im.mode == "L"
        assert im.size[0] == 4 * (16 * 6 + 2) + 2  # source/target x 2 channels, tiles x6
    with pytest.raises(InputError, match="non-empty patch arrays"):
        write_preview(X[:0], Y[:0], "SCZYX", tmp_path / "p.png")


# --------------------------------------------------------------------------- command line


def test_cli_index_dataset_rebuild(tmp_path: Path, capsys) -> None:
    base = _pairs(tmp_path / "in", 4, (48, 48))
    assert (
        cli(
            [
                "index",
                str(base / "low"),
                str(base / "GT"),
                "--axes",
                "YX",
                "--patch-size",
                "64",
                "64",
                "--output",
                str(tmp_path / "i.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "8 images from 8 units, 0 accepted, 8 rejected; hashed 8" in out
    assert "smaller than the patch size" in out
    assert (
        cli(
            [
                "dataset",
                "--source",
                str(base / "low"),
                "--target",
                str(base / "GT"),
                "--axes",
                "YX",
                "--test-fraction",
                "0.25",
                "--seed",
                "1",
                "--patch-size",
                "32",
                "32",
                "-k",
                "4",
                "--normalization",
                "dataset",
                "--output",
                str(tmp_path / "ds"),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3 training / 1 test images" in out and "preview.png" in out
    m = tmp_path / "ds" / "manifest.json"
    assert cli(["patches", "--manifest", str(m), "--output", str(tmp_path / "r.npz"), "-q"]) == 0
    a, b = np.load(tmp_path / "ds" / "training_data.npz"), np.load(tmp_path / "r.npz")
    assert np.array_equal(a["X"], b["X"]) and np.array_equal(a["Y"], b["Y"])
    assert cli(["patches", "--manifest", str(m), "--patch-size", "8", "8"]) == 2
    assert "drop --patch-size" in capsys.readouterr().err
    assert cli(["patches", str(base)]) == 2
    assert "--patch-size" in capsys.readouterr().err
