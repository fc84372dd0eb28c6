"""Damaged data at read time: every reader names the file/store/array/chunk and the fix."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from caredask.errors import FormatError
from caredask.loaders import open_images
from tests.oracles import oracle


def _garble(path: Path) -> None:
    path.write_bytes(b"garbage!" * 8)


@pytest.mark.parametrize(
    ("fmt", "shards", "chunk"),
    [(3, None, "c/1/2"), (2, None, "1.2"), (3, (32, 32), "c/1/1")],
)
def test_corrupt_zarr_chunk_named(tmp_path: Path, fmt: int, shards: Any, chunk: str) -> None:
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    kw: dict[str, Any] = {"shards": shards, "chunks": (8, 8)} if shards else {"chunks": (16, 16)}
    zarr.create_array(tmp_path / "x.zarr", name="raw", data=data, zarr_format=fmt, **kw)
    _garble(tmp_path / "x.zarr" / "raw" / chunk)
    (img,) = open_images(tmp_path / "x.zarr", axes="YX", chunks=(64, 64))
    assert np.array_equal(img.data[:16].compute(), data[:16])  # intact chunks still read
    pattern = (
        rf"x\.zarr/raw: chunk '{chunk}' \(.*x\.zarr/raw/{chunk}\) cannot be decoded "
        r"\((RuntimeError|ValueError|OSError): .*\); the store is damaged .*copy the store again"
    )
    with pytest.raises(FormatError, match=pattern) as info:
        img.data.compute()
    assert info.value.__cause__ is not None  # the library's error stays attached
    restored = pickle.loads(pickle.dumps(img.data))  # the guard pickles with the array
    with pytest.raises(FormatError, match=rf"chunk '{chunk}'"):
        restored.compute()


def test_corrupt_ome_zarr_level_chunk_named(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    data = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32)
    root = zarr.open_group(parse_url(tmp_path / "img.ome.zarr", mode="w").store)
    write_image(data, root, axes="zyx", storage_options={"chunks": (1, 16, 16)}, scale_factors=[])
    store = tmp_path / "img.ome.zarr"
    chunks = sorted(p for p in store.rglob("*") if p.is_file() and p.name != "zarr.json")
    level = chunks[0].relative_to(store).parts[0]  # ome-zarr names level 0 '0' or 's0'
    key = chunks[0].relative_to(store / level).as_posix()
    _garble(chunks[0])
    (img,) = open_images(store)
    with pytest.raises(FormatError, match=rf"img\.ome\.zarr/{level}: chunk '{key}'"):
        img.data.compute()


def _bad_npy(tmp_path: Path) -> Path:
    np.save(tmp_path / "a.npy", np.arange(4096, dtype=np.float32).reshape(64, 64))
    return tmp_path / "a.npy"


def test_custom_memmap_truncated_after_opening(tmp_path: Path) -> None:
    f = _bad_npy(tmp_path)

    def load(path: Any, axes: Any) -> Any:
        return np.load(path, mmap_mode="r")

    (img,) = open_images(f, axes="YX", read_source_func=load)
    f.write_bytes(f.read_bytes()[:1000])  # half-copied file
    with pytest.raises(
        FormatError, match=r"a\.npy: reading pixels .* failed .*truncated or changed"
    ):
        img.data.compute()


class _Flaky:
    """An array-like whose reads fail like a broken library would."""

    shape, dtype, ndim = (8, 8), np.dtype("u1"), 2

    def __getitem__(self, key: Any) -> np.ndarray:
        raise OSError("decoder: bad block header")


def _flaky_loader(path: Any) -> _Flaky:
    return _Flaky()


def test_custom_readers_errors_name_the_file(tmp_path: Path) -> None:
    f = _bad_npy(tmp_path)
    (img,) = open_images(f, axes="YX", read_source_func=lambda p, a: _Flaky())
    with pytest.raises(FormatError, match=r"a\.npy: reading pixels .*OSError: decoder: bad block"):
        img.data.compute()
    (img,) = open_images(f, axes="YX", chunked_loader=_flaky_loader)
    with pytest.raises(FormatError, match=r"a\.npy: reading pixels .*chunked_loader cannot read"):
        img.data.compute()

    def broken(path: Any, axes: Any) -> Any:
        raise ValueError("unexpected magic number")

    with pytest.raises(
        FormatError, match=r"a\.npy: read_source_func broken failed on this file \(ValueError"
    ):
        open_images(f, axes="YX", read_source_func=broken)


def test_czi_damaged_after_opening_names_file_and_scene(tmp_path: Path) -> None:
    pyczi = oracle("pylibCZIrw.czi", "pylibCZIrw")
    f = tmp_path / "s.czi"
    with pyczi.create_czi(str(f), exist_ok=True) as w:
        w.write(np.ones((32, 32, 1), np.uint16), plane={"C": 0, "Z": 0, "T": 0}, scene=0)
    (img,) = open_images(f, axes="SCYX")
    f.write_bytes(b"")  # emptied on the share
    with pytest.raises(FormatError, match=r"s\.czi: reading the CZI \(scene 0, pixels .*\) failed"):
        img.data.compute()


@pytest.mark.parametrize("kind", ["zarr", "tif", "folder"])
def test_file_uris_are_percent_decoded(tmp_path: Path, kind: str) -> None:
    import tifffile

    folder = tmp_path / "my data"
    folder.mkdir()
    data = np.arange(64, dtype=np.uint8).reshape(8, 8)
    if kind == "zarr":
        zarr.create_array(folder / "x y.zarr", data=data, chunks=(4, 4))
        target = folder / "x y.zarr"
    else:
        tifffile.imwrite(folder / "x y.tif", data)
        target = folder / "x y.tif" if kind == "tif" else folder
    uri = target.as_uri()
    assert "%20" in uri
    (img,) = open_images(uri, axes="YX")
    assert np.array_equal(img.data.compute(), data)


@pytest.mark.parametrize("how", ["image", "level"])
def test_ome_axes_contradicting_dimension_names_refused(tmp_path: Path, how: str) -> None:
    g = zarr.open_group(tmp_path / "img.zarr", mode="w", zarr_format=3)
    axes = [{"name": "z", "type": "space"}, {"name": "y", "type": "space"}]
    axes.append({"name": "x", "type": "space"})
    ds = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": ds}]}
    g.create_array("0", data=np.zeros((2, 8, 8), np.uint8), dimension_names=["c", "y", "x"])
    source = tmp_path / "img.zarr" / ("0" if how == "level" else "")
    with pytest.raises(
        FormatError,
        match=r"img\.zarr/0: the OME multiscales axes say 'ZYX' but the array's "
        r"dimension_names say 'CYX'; .*correct one of them",
    ):
        open_images(source)


def test_unreachable_zarr_chunk_is_not_called_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zarr.create_array(tmp_path / "x.zarr", data=np.zeros((8, 8), np.uint8), chunks=(4, 4))
    (img,) = open_images(tmp_path / "x.zarr", axes="YX")

    def unreachable(self: Any, key: Any) -> Any:
        raise TimeoutError("share went away")

    monkeypatch.setattr(zarr.Array, "__getitem__", unreachable)
    with pytest.raises(
        FormatError,
        match=r"x\.zarr: reading pixels .* failed \(TimeoutError: share went away\); "
        r"check that the store is reachable",
    ):
        img.data.compute(scheduler="sync")
