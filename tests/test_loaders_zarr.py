"""Zarr (v2 and v3) loader: paths, URIs, lists, remote stores, chunks, laziness and errors."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
import zarr.storage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caredask.errors import AxesError, FormatError, InputError, SourceNotFoundError
from caredask.loaders import open_images
from caredask.loaders.zarrs import is_zarr_source
from tests.conftest_remote import HttpStore, http_store

__all__ = ["http_store"]  # the fixture, imported for pytest

META_KEYS = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


def _raise_scheduler(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("something was computed")


def _rand(shape: tuple[int, ...], seed: int = 0, dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5000, shape).astype(dtype)


def _store(path: Path, fmt: int = 3) -> dict[str, np.ndarray]:
    """A store with root arrays '10', '2', 'raw' and a sub-group (ignored) with an array."""
    g = zarr.open_group(path, mode="w", zarr_format=fmt)
    data = {"10": _rand((20, 30), 1), "2": _rand((3, 20, 30), 2), "raw": _rand((40, 50), 3)}
    for k, v in data.items():
        g.create_array(k, data=v, chunks=(8,) * (v.ndim - 2) + (8, 16))
    g.create_group("sub").create_array("deep", data=_rand((5, 5), 4))
    return data


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Keys read from any LocalStore (threads included).

    With zarr-python's codec pipeline: the ``zarrs`` pipeline reads files from Rust, past the
    Python store methods this counts.
    """
    from caredask.loaders.codecs import use_zarrs

    log: list[str] = []
    orig = zarr.storage.LocalStore.get

    async def get(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        log.append(key)
        return await orig(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    with use_zarrs(False):
        yield log


def _pixel_reads(log: list[str]) -> list[str]:
    return [k for k in log if not k.endswith(META_KEYS)]


@pytest.mark.parametrize("fmt", [2, 3])
def test_store_path_opens_root_arrays_in_natural_order(tmp_path: Path, fmt: int) -> None:
    data = _store(tmp_path / "x.zarr", fmt)
    with pytest.raises(AxesError, match="no axes metadata"):
        open_images(str(tmp_path / "x.zarr"))
    g = zarr.open_group(tmp_path / "x.zarr", mode="r+")
    for k in data:
        g[k].attrs["_ARRAY_DIMENSIONS"] = list("zyx"[-data[k].ndim :])
    images = open_images(str(tmp_path / "x.zarr"))
    assert [im.name for im in images] == ["x.zarr/2", "x.zarr/10", "x.zarr/raw"]
    assert [im.axes for im in images] == ["ZYX", "YX", "YX"]
    for im in images:
        key = im.name.split("/")[-1]
        assert im.source == str(tmp_path / "x.zarr" / key)
        assert im.data.chunks[-1][0] == 16
        np.testing.assert_array_equal(im.data.compute(), data[key])


def test_root_array_store_and_given_axes(tmp_path: Path) -> None:
    arr = _rand((6, 40, 30))
    zarr.create_array(tmp_path / "root.zarr", data=arr, chunks=(2, 16, 16))
    (im,) = open_images(tmp_path / "root.zarr", axes="zyx")
    assert (im.name, im.axes, im.data.chunks[0]) == ("root.zarr", "ZYX", (2, 2, 2))
    np.testing.assert_array_equal(im.data.compute(), arr)


def test_dimension_names_give_axes_and_contradiction_is_an_error(tmp_path: Path) -> None:
    arr = _rand((2, 20, 30))
    zarr.create_array(tmp_path / "d.zarr", data=arr, dimension_names=["c", "y", "x"])
    (im,) = open_images(str(tmp_path / "d.zarr"))
    assert im.axes == "CYX"
    assert open_images(str(tmp_path / "d.zarr"), axes="CYX")[0].axes == "CYX"
    with pytest.raises(AxesError, match=r"'ZYX' were given but the dimension_names say 'CYX'"):
        open_images(str(tmp_path / "d.zarr"), axes="ZYX")


@pytest.mark.parametrize("fmt", [2, 3])
def test_file_uris_absolute_relative_group_and_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: int
) -> None:
    monkeypatch.chdir(tmp_path)
    g = zarr.open_group("train.zarr", mode="w", zarr_format=fmt)
    grp = g.create_group("others")
    a3, a1 = _rand((16, 16), 5), _rand((16, 16), 6)
    grp.create_array("a3", data=a3)
    grp.create_array("a1", data=a1)
    rel = str(grp.store_path) if fmt == 3 else "file://train.zarr/others"
    assert rel == "file://train.zarr/others"
    absolute = f"file://{tmp_path}/train.zarr/others"
    for uri in (rel, absolute, absolute + "/"):
        images = open_images(uri, axes="YX")
        assert [im.name for im in images] == ["train.zarr/others/a1", "train.zarr/others/a3"]
        np.testing.assert_array_equal(images[1].data.compute(), a3)
    (im,) = open_images(rel + "/a3", axes="YX")
    assert im.name == "train.zarr/others/a3"
    np.testing.assert_array_equal(im.data.compute(), a3)


def test_list_of_paths_and_list_of_uris(tmp_path: Path) -> None:
    for i in range(2):
        zarr.create_array(tmp_path / f"s{i}.zarr", data=_rand((8, 8), i))
    paths = [str(tmp_path / "s1.zarr"), tmp_path / "s0.zarr"]
    assert [im.name for im in open_images(paths, axes="YX")] == ["s1.zarr", "s0.zarr"]
    uris = [f"file://{tmp_path}/s0.zarr", f"file://{tmp_path}/s1.zarr"]
    assert [im.name for im in open_images(uris, axes="YX")] == ["s0.zarr", "s1.zarr"]


def test_mixed_list_of_paths_and_uris_is_an_error(tmp_path: Path) -> None:
    for i in range(2):
        zarr.create_array(tmp_path / f"s{i}.zarr", data=_rand((8, 8), i))
    mixed = [str(tmp_path / "s0.zarr"), f"file://{tmp_path}/s1.zarr"]
    with pytest.raises(InputError, match="must be all paths or all URIs"):
        open_images(mixed, axes="YX")
    with pytest.raises(ValueError, match="mixes paths"):
        open_images(mixed[::-1], axes="YX")


@pytest.mark.parametrize("sharded", [False, True])
def test_chunks_follow_store_and_patch_reads_touch_only_needed_chunks(
    tmp_path: Path, reads: list[str], sharded: bool
) -> None:
    arr = _rand((64, 64))
    kw: dict[str, Any] = {"chunks": (8, 8)}
    if sharded:
        kw["shards"] = (32, 32)
    zarr.create_array(tmp_path / "c.zarr", data=arr, **kw)
    reads.clear()
    with dask.config.set(scheduler=_raise_scheduler):
        (im,) = open_images(str(tmp_path / "c.zarr"), axes="YX")
    assert _pixel_reads(reads) == []
    assert im.data.chunks == (((32, 32),) * 2 if sharded else ((8,) * 8,) * 2)
    reads.clear()
    patch = im.data[10:14, 20:30].compute(scheduler="sync")
    np.testing.assert_array_equal(patch, arr[10:14, 20:30])
    # rows 10..13 lie in chunk row 1; columns 20..29 in chunk columns 2 and 3
    expected = {"c/0/0"} if sharded else {"c/1/2", "c/1/3"}
    assert set(_pixel_reads(reads)) == expected
    if sharded:  # index + two inner chunks, never the whole shard at once
        assert len(_pixel_reads(reads)) == 3


def test_chunks_option_and_deterministic_picklable_graph(tmp_path: Path) -> None:
    arr = _rand((4, 64, 64))
    zarr.create_array(tmp_path / "c.zarr", data=arr, chunks=(1, 16, 16))
    (im,) = open_images(str(tmp_path / "c.zarr"), axes="ZYX", chunks=(2, 32, 64))
    assert im.data.chunks == ((2, 2), (32, 32), (64,))
    (again,) = open_images(str(tmp_path / "c.zarr"), axes="ZYX", chunks=(2, 32, 64))
    assert again.data.name == im.data.name
    (other,) = open_images(str(tmp_path / "c.zarr"), axes="ZYX")
    assert other.data.name != im.data.name
    graph = dict(im.data.__dask_graph__())
    assert len(pickle.dumps(graph)) < 20_000
    restored = pickle.loads(pickle.dumps(im.data))
    np.testing.assert_array_equal(restored.compute(), arr)
    zarr.open_array(tmp_path / "c.zarr", mode="r+").attrs["touched"] = 1
    os.utime(tmp_path / "c.zarr" / "zarr.json", ns=(1, 1))
    (changed,) = open_images(str(tmp_path / "c.zarr"), axes="ZYX", chunks=(2, 32, 64))
    assert changed.data.name != im.data.name


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cz=st.integers(1, 5),
    cy=st.integers(3, 40),
    cx=st.integers(3, 40),
    dask_chunks=st.one_of(st.none(), st.tuples(st.integers(1, 5), st.integers(5, 50))),
    data=st.data(),
)
def test_pixels_equal_eager_read_on_random_chunkings(
    tmp_path_factory: pytest.TempPathFactory,
    cz: int,
    cy: int,
    cx: int,
    dask_chunks: tuple[int, int] | None,
    data: st.DataObject,
) -> None:
    arr = _rand((5, 37, 41), cz * 100 + cy)
    path = tmp_path_factory.mktemp("h") / "r.zarr"
    fmt = data.draw(st.sampled_from([2, 3]))
    zarr.create_array(path, data=arr, chunks=(cz, cy, cx), zarr_format=fmt)
    chunks = None if dask_chunks is None else (dask_chunks[0], dask_chunks[1], -1)
    (im,) = open_images(str(path), axes="ZYX", chunks=chunks)
    eager = zarr.open_array(path, mode="r")[...]
    z0 = data.draw(st.integers(0, 4))
    y0, y1 = sorted(data.draw(st.tuples(st.integers(0, 37), st.integers(0, 37))))
    x0, x1 = sorted(data.draw(st.tuples(st.integers(0, 41), st.integers(0, 41))))
    sl = (slice(z0, None), slice(y0, y1), slice(x0, x1))
    np.testing.assert_array_equal(im.data[sl].compute(), eager[sl])
    np.testing.assert_array_equal(im.data.compute(), arr)


def test_missing_store_and_uri_to_nothing(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"nothing\.zarr: no zarr store.*check the path"):
        open_images(str(tmp_path / "nothing.zarr"))
    zarr.open_group(tmp_path / "x.zarr", mode="w")
    with pytest.raises(SourceNotFoundError, match=r"x\.zarr/nope.*at this URI"):
        open_images(f"file://{tmp_path}/x.zarr/nope")
    (tmp_path / "blank.zarr").mkdir()
    with pytest.raises(SourceNotFoundError, match=r"blank\.zarr: no zarr group or array here"):
        open_images(str(tmp_path / "blank.zarr"))


def test_group_without_arrays_names_its_subgroups(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "g.zarr", mode="w")
    g.create_group("left")
    with pytest.raises(FormatError, match=r"contains no arrays.*groups \['left'\]"):
        open_images(str(tmp_path / "g.zarr"), axes="YX")
    zarr.open_group(tmp_path / "e.zarr", mode="w")
    with pytest.raises(FormatError, match=r"e\.zarr: this zarr group contains no arrays"):
        open_images(str(tmp_path / "e.zarr"), axes="YX")


def test_axes_errors(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "a.zarr", data=_rand((3, 8, 8)))
    with pytest.raises(AxesError, match=r"a\.zarr: axes 'YX' have 2 letters but the array has 3"):
        open_images(str(tmp_path / "a.zarr"), axes="YX")
    with pytest.raises(AxesError, match=r"a\.zarr: .*no axes metadata.*axes='ZYX'"):
        open_images(str(tmp_path / "a.zarr"))
    with pytest.raises(AxesError, match=r"a\.zarr: invalid axis 'Q'"):
        open_images(str(tmp_path / "a.zarr"), axes="QYX")


def test_bad_options(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "a.zarr", data=_rand((8, 8)))
    with pytest.raises(InputError, match=r"unknown option\(s\) \['pattern'\]"):
        open_images(str(tmp_path / "a.zarr"), axes="YX", pattern="*")
    with pytest.raises(InputError, match="level= applies to OME-Zarr"):
        open_images(str(tmp_path / "a.zarr"), axes="YX", level=1)


def test_probe() -> None:
    assert is_zarr_source("x.zarr") and is_zarr_source("file://x.zarr/g")
    assert is_zarr_source("s3://bucket/x.zarr/0") and is_zarr_source("https://h/data/store")
    assert not is_zarr_source("https://h/img.tif") and not is_zarr_source("img.tif")
    assert not is_zarr_source(np.zeros(3)) and not is_zarr_source(b"x.zarr")


# --------------------------------------------------------------------------- remote (HTTP)


@pytest.mark.parametrize("fmt", [2, 3])
def test_remote_store_over_http(http_store: HttpStore, fmt: int) -> None:
    data = _store(http_store.root / "x.zarr", fmt)
    url = f"{http_store.url}/x.zarr"
    with dask.config.set(scheduler=_raise_scheduler):
        images = open_images(f"{url}/raw", axes="YX") + open_images(f"{url}/2", axes="ZYX")
    assert http_store.chunk_requests() == []
    assert [im.name for im in images] == ["x.zarr/raw", "x.zarr/2"]
    assert images[0].source == f"{url}/raw"
    np.testing.assert_array_equal(images[1].data.compute(), data["2"])
    http_store.log.clear()
    patch = images[0].data[0:4, 0:10].compute(scheduler="sync")
    np.testing.assert_array_equal(patch, data["raw"][0:4, 0:10])
    assert http_store.chunk_requests() == ["/x.zarr/raw/c/0/0" if fmt == 3 else "/x.zarr/raw/0.0"]
    restored = pickle.loads(pickle.dumps(images[0].data))
    np.testing.assert_array_equal(restored.compute(), data["raw"])


def test_remote_group_lists_arrays_in_natural_order(http_store: HttpStore) -> None:
    data = _store(http_store.root / "x.zarr", 3)
    g = zarr.open_group(http_store.root / "x.zarr", mode="r+")
    for k in data:
        g[k].attrs["_ARRAY_DIMENSIONS"] = list("zyx"[-data[k].ndim :])
    images = open_images([f"{http_store.url}/x.zarr"])
    assert [im.name for im in images] == ["x.zarr/2", "x.zarr/10", "x.zarr/raw"]
    np.testing.assert_array_equal(images[1].data.compute(), data["10"])


@pytest.mark.parametrize("status", [404, 500])
def test_unreadable_remote_store(http_store: HttpStore, status: int) -> None:
    url = f"{http_store.url}/status{status}/x.zarr"
    match = "no zarr group or array here" if status == 404 else "500"
    with pytest.raises(SourceNotFoundError, match=rf"status{status}/x\.zarr: .*{match}"):
        open_images(url, axes="YX")
    with pytest.raises(SourceNotFoundError, match=r"nothing\.zarr: no zarr group or array"):
        open_images(f"{http_store.url}/nothing.zarr", axes="YX")


def test_dask_array_of_image_is_a_plain_dask_array(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "a.zarr", data=_rand((8, 8)))
    (im,) = open_images(str(tmp_path / "a.zarr"), axes="YX")
    assert isinstance(im.data, da.Array) and im.data.dtype == np.uint16


def test_a_folder_of_zarr_stores_is_a_source(tmp_path):
    """One image per store of the folder, in natural order; other sub-folders skipped."""
    import caredask
    from caredask.csbdeep import RawData
    from caredask.loaders import open_images

    rng = np.random.default_rng(0)
    for kind in ("low", "GT"):
        for i in (10, 2):
            a = rng.integers(0, 1000, (8, 32, 32)).astype(np.uint16)
            zarr.create_array(tmp_path / kind / f"im{i}.zarr", data=a, chunks=(4, 16, 16))
        (tmp_path / kind / "notes").mkdir()
    images = open_images(tmp_path / "low", axes="ZYX")
    assert [im.name for im in images] == ["im2.zarr", "im10.zarr"]
    raw = RawData.from_sources(tmp_path / "low", tmp_path / "GT", axes="ZYX")
    X, _, _ = caredask.generate_training_data(raw, (4, 16, 16), 4, seed=0)
    assert X.shape == (8, 1, 4, 16, 16)
