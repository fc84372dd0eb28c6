"""Tests of the lazy TIFF loader (caredask.loaders.tiff)."""

from __future__ import annotations

import io
import mmap
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from caredask.errors import AxesError, FormatError, InputError, SourceNotFoundError
from caredask.loaders import LazyImage, open_images
from caredask.loaders import tiff as tiffmod
from caredask.loaders.tiff import TiffMemmapReader, TiffZarrReader, tiff_axes
from tests.strategies import regular_chunks

ZYX = (6, 40, 50)
CZYX = (3, 6, 40, 50)

# name -> (data shape, imwrite kwargs, axes to pass (None: from metadata), expected axes, reader)
VARIANTS: dict[str, tuple[tuple[int, ...], dict[str, Any], str | None, str, type]] = {
    "plain": (ZYX, {}, "ZYX", "ZYX", TiffMemmapReader),
    "imagej_zyx": (
        ZYX,
        {"imagej": True, "metadata": {"axes": "ZYX"}},
        None,
        "ZYX",
        TiffMemmapReader,
    ),
    # ImageJ hyperstacks must be in TZCYXS order: CZYX data are stored (and read) as ZCYX.
    "imagej_zcyx": (
        (6, 3, 40, 50),
        {"imagej": True, "metadata": {"axes": "ZCYX"}},
        None,
        "ZCYX",
        TiffMemmapReader,
    ),
    "bigtiff": (ZYX, {"bigtiff": True}, "ZYX", "ZYX", TiffMemmapReader),
    "bigendian": (ZYX, {"byteorder": ">"}, "ZYX", "ZYX", TiffMemmapReader),
    "zlib_strips": (ZYX, {"compression": "zlib", "rowsperstrip": 16}, "ZYX", "ZYX", TiffZarrReader),
    "zstd_tiles": (ZYX, {"compression": "zstd", "tile": (16, 16)}, "ZYX", "ZYX", TiffZarrReader),
    "bigtiff_lzw": (ZYX, {"bigtiff": True, "compression": "lzw"}, "ZYX", "ZYX", TiffZarrReader),
    "ome_czyx": (
        CZYX,
        {"ome": True, "metadata": {"axes": "CZYX"}, "compression": "zstd", "tile": (16, 16)},
        None,
        "CZYX",
        TiffZarrReader,
    ),
    "shaped_axes": (ZYX, {"metadata": {"axes": "ZYX"}}, None, "ZYX", TiffMemmapReader),
    "single_page": ((40, 50), {}, None, "YX", TiffMemmapReader),
}


def _write(path: Path, shape: tuple[int, ...], kwargs: dict[str, Any], seed: int = 0) -> Path:
    data = np.random.default_rng(seed).integers(0, 60000, shape, dtype=np.uint16)
    tifffile.imwrite(path, data, **kwargs)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("variants")
    out = {}
    for i, (name, (shape, kwargs, *_)) in enumerate(VARIANTS.items()):
        suffix = ".ome.tif" if name.startswith("ome") else ".tif"
        out[name] = _write(d / f"{name}{suffix}", shape, kwargs, seed=i)
    rgb = np.random.default_rng(99).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    tifffile.imwrite(d / "rgb.tif", rgb)
    out["rgb"] = d / "rgb.tif"
    return out


def _open(files: dict[str, Path], name: str, **options: Any) -> LazyImage:
    axes = VARIANTS[name][2] if name in VARIANTS else None
    (img,) = open_images(files[name], axes=axes, **options)
    return img


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pixels_equal_tifffile(files: dict[str, Path], name: str) -> None:
    img = _open(files, name)
    ref = tifffile.imread(files[name])
    reader_cls = VARIANTS[name][4]
    assert img.axes == VARIANTS[name][3]
    assert img.data.shape == ref.shape and img.data.dtype == ref.dtype
    assert img.name == files[name].name and img.source == str(files[name].resolve())
    assert any(isinstance(v, reader_cls) for v in dict(img.data.dask).values())
    np.testing.assert_array_equal(img.data.compute(), ref)


def test_rgb_samples_become_channels(files: dict[str, Path]) -> None:
    (img,) = open_images(files["rgb"])
    assert img.axes == "YXC"
    np.testing.assert_array_equal(img.data.compute(), tifffile.imread(files["rgb"]))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), name=st.sampled_from(["plain", "zstd_tiles", "zlib_strips", "ome_czyx"]))
def test_random_chunks(files: dict[str, Path], data: st.DataObject, name: str) -> None:
    shape = tifffile.imread(files[name]).shape
    chunks = data.draw(regular_chunks(shape, parts=7))
    img = _open(files, name, chunks=chunks)
    assert img.data.chunksize == chunks
    np.testing.assert_array_equal(img.data.compute(), tifffile.imread(files[name]))


def test_default_chunks_are_storage_multiples(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiffmod, "CHUNK_BYTES", 4 * 40 * 50 * 2)  # ~4 pages
    img = _open(files, "zstd_tiles")  # tiles (1, 16, 16)
    for size, unit, n in zip(img.data.chunksize, (1, 16, 16), img.data.shape, strict=True):
        assert size == n or size % unit == 0
    assert img.data.npartitions > 1
    img = _open(files, "zlib_strips")  # strips (1, 16, 50)
    assert img.data.chunksize[1] in (16, 32) and img.data.chunksize[2] == 50
    np.testing.assert_array_equal(img.data.compute(), tifffile.imread(files["zlib_strips"]))


def test_tiff_axes_mapping() -> None:
    assert tiff_axes("TZYXS") == "TZYXC"
    assert tiff_axes("CZYX") == "CZYX"
    assert tiff_axes("QYX") is None and tiff_axes("IYX") is None
    assert tiff_axes("CYXS") is None  # channels and samples would both be C


@pytest.mark.parametrize("name", ["plain", "bigtiff", "zstd_tiles"])
def test_no_axes_metadata_needs_axes(files: dict[str, Path], name: str) -> None:
    with pytest.raises(AxesError, match=r"no usable axes.*'QYX'.*pass axes="):
        open_images(files[name])


def test_given_axes_win_and_must_fit(files: dict[str, Path]) -> None:
    (img,) = open_images(files["imagej_zyx"], axes="tyx")
    assert img.axes == "TYX"
    with pytest.raises(AxesError, match=r"imagej_zyx\.tif.*'YX'.*shape \(6, 40, 50\)"):
        open_images(files["imagej_zyx"], axes="YX")


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "folder"
    d.mkdir()
    for i in (10, 2, 1):
        _write(d / f"img_{i}.tif", (8, 9), {}, seed=i)
    _write(d / "img_3.TIF", (8, 9), {}, seed=3)
    _write(d / ".hidden.tif", (8, 9), {})
    (d / "notes.txt").write_text("not an image")
    (d / "sub.tif").mkdir()
    return d


def test_folder_natural_order(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    imgs = open_images(d, axes="YX")
    assert [i.name for i in imgs] == ["img_1.tif", "img_2.tif", "img_3.TIF", "img_10.tif"]
    for img in imgs:
        np.testing.assert_array_equal(img.data.compute(), tifffile.imread(d / img.name))
    imgs = open_images(str(d), axes="YX", pattern="img_1*")
    assert [i.name for i in imgs] == ["img_1.tif", "img_10.tif"]


def test_list_of_paths(files: dict[str, Path]) -> None:
    imgs = open_images([files["plain"], str(files["zstd_tiles"])], axes="ZYX")
    assert [i.name for i in imgs] == ["plain.tif", "zstd_tiles.tif"]


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"nope\.tif: no such TIFF file"):
        open_images(tmp_path / "nope.tif", axes="YX")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceNotFoundError, match=r"empty: no image files caredask can read"):
        open_images(empty, axes="YX")
    with pytest.raises(SourceNotFoundError, match=r"empty: no file matches pattern '\*\.tif\*'"):
        open_images(empty, axes="YX", pattern="*.tif*")


def test_bad_options(files: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="unknown option"):
        open_images(files["plain"], axes="ZYX", chunk=3)
    with pytest.raises(InputError, match=r"series=3 does not exist.*1 series"):
        open_images(files["plain"], axes="ZYX", series=3)
    with pytest.raises(InputError, match=r"level=1 does not exist"):
        open_images(files["plain"], axes="ZYX", level=1)


def test_random_bytes_is_format_error(tmp_path: Path) -> None:
    p = tmp_path / "x.tif"
    p.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(FormatError, match=r"x\.tif: not a readable TIFF"):
        open_images(p, axes="YX")


@pytest.mark.parametrize(
    ("kwargs", "frac"),
    [({}, 0.6), ({"compression": "zstd", "tile": (16, 16)}, 0.95), ({"imagej": True}, 0.3)],
)
def test_truncated_is_format_error(tmp_path: Path, kwargs: dict[str, Any], frac: float) -> None:
    full = _write(tmp_path / "full.tif", ZYX, kwargs)
    raw = full.read_bytes()
    p = tmp_path / "cut.tif"
    p.write_bytes(raw[: int(len(raw) * frac)])
    with pytest.raises(FormatError, match=r"cut\.tif: not a readable TIFF"):
        open_images(p, axes="ZYX")


def _raising_scheduler(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a graph was computed")


def test_opening_and_building_computes_nothing(files: dict[str, Path]) -> None:
    with dask.config.set(scheduler=_raising_scheduler):
        for name in ("plain", "zstd_tiles", "ome_czyx"):
            img = _open(files, name, chunks=(1,) * (len(VARIANTS[name][0]) - 2) + (16, 16))
            y = (img.data[..., 2:30, 5:40].astype(np.float32) * 2 + 1).sum(axis=-1)
            assert y.shape[-1] == 28
        with pytest.raises(AssertionError, match="computed"):
            y.compute()


@pytest.mark.parametrize("name", ["plain", "zstd_tiles"])
def test_reads_only_touched_chunks(
    files: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    cls = VARIANTS[name][4]
    original = cls.__getitem__

    def counting(self: Any, key: Any) -> np.ndarray:
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(cls, "__getitem__", counting)
    img = _open(files, name, chunks=(1, 16, 16))
    assert calls == []
    part = img.data[2, 3:10, 20:30].compute(scheduler="sync")  # inside one (1, 16, 16) chunk
    assert len(calls) == 1
    np.testing.assert_array_equal(part, tifffile.imread(files[name])[2, 3:10, 20:30])
    img.data[4, 10:20, 0:5].compute(scheduler="sync")  # spans two chunks along Y
    assert len(calls) == 3


class _Recorder(pickle.Pickler):
    def __init__(self, f: io.BytesIO) -> None:
        super().__init__(f)
        self.seen: list[type] = []

    def reducer_override(self, obj: Any) -> Any:
        self.seen.append(type(obj))
        return NotImplemented


@pytest.mark.parametrize("name", ["plain", "ome_czyx"])
def test_graph_pickles_without_handles(files: dict[str, Path], name: str) -> None:
    img = _open(files, name)
    img.data[..., :3, :3].compute()  # populate the per-process zarr cache first
    rec = _Recorder(io.BytesIO())
    rec.dump(img.data)
    handles = (io.IOBase, mmap.mmap, np.memmap, tifffile.TiffFile, tifffile.FileHandle)
    assert not [t for t in rec.seen if issubclass(t, handles)]
    assert not [t for t in rec.seen if "zarr" in t.__module__ or "Store" in t.__name__]
    again = pickle.loads(pickle.dumps(img.data))
    np.testing.assert_array_equal(again.compute(), tifffile.imread(files[name]))


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_distributed_processes(files: dict[str, Path], client: Any) -> None:
    for name in ("bigendian", "imagej_zcyx", "zstd_tiles", "ome_czyx"):
        img = _open(files, name, chunks=(1,) * (len(VARIANTS[name][0]) - 2) + (32, 32))
        got = client.compute(img.data).result()
        np.testing.assert_array_equal(got, tifffile.imread(files[name]))


def test_names_deterministic(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.tif", ZYX, {"compression": "zlib"})
    first = open_images(p, axes="ZYX")[0].data
    assert open_images(p, axes="ZYX")[0].data.name == first.name
    assert open_images(p, axes="ZYX", chunks=(1, 40, 50))[0].data.name != first.name
    st_ = os.stat(p)
    os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    assert open_images(p, axes="ZYX")[0].data.name != first.name
    with pytest.raises(FormatError, match=r"a\.tif: the file changed after it was opened"):
        first.compute()
