"""Custom formats: read_source_func + extension_filter, and chunked loaders."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caredask.errors import AxesError, InputError, SourceNotFoundError
from caredask.loaders import open_images
from caredask.loaders.custom import ChunkedLoaderReader, MemmapReader

CALLS: list[str] = []


def load_npy(path: Path, axes: str) -> np.ndarray:
    return np.load(path)


def load_npy_mmap(path: Path, axes: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def counting_mmap(path: Any) -> np.ndarray:
    CALLS.append(str(path))
    return np.load(path, mmap_mode="r")


def _raise_scheduler(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("something was computed")


@pytest.fixture
def folder(tmp_path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    data = {}
    for name in ["img10.npy", "img2.npy", "sub/img1.npy"]:
        arr = rng.integers(0, 1000, (3, 20, 30)).astype("uint16")
        (tmp_path / name).parent.mkdir(exist_ok=True)
        np.save(tmp_path / name, arr)
        data[name] = arr
    (tmp_path / "notes.txt").write_text("not an image")
    return data


def test_read_source_func_folder_with_extension_filter(
    tmp_path: Path, folder: dict[str, np.ndarray]
) -> None:
    images = open_images(tmp_path, axes="zyx", read_source_func=load_npy, extension_filter="*.npy")
    assert [im.name for im in images] == ["img2.npy", "img10.npy", "img1.npy"]
    assert images[0].source == str(tmp_path / "img2.npy") and images[0].axes == "ZYX"
    for im, key in zip(images, ["img2.npy", "img10.npy", "sub/img1.npy"], strict=True):
        np.testing.assert_array_equal(im.data.compute(), folder[key])
    same = open_images(str(tmp_path), axes="ZYX", read_source_func=load_npy, extension_filter="npy")
    assert [im.data.name for im in same] == [im.data.name for im in images]


def test_memmap_result_stays_lazy(tmp_path: Path, folder: dict[str, np.ndarray]) -> None:
    big = np.random.default_rng(1).random((4, 128, 128))
    np.save(tmp_path / "big.npy", big)
    with dask.config.set(scheduler=_raise_scheduler):
        (im,) = open_images(
            tmp_path / "big.npy", axes="ZYX", read_source_func=load_npy_mmap, chunks=(1, 64, 64)
        )
    graph = dict(im.data.__dask_graph__())
    assert any(isinstance(getattr(v, "inner", v), MemmapReader) for v in graph.values())
    assert len(pickle.dumps(graph)) < 20_000 < big.nbytes
    np.testing.assert_array_equal(im.data[1, 5:9].compute(), big[1, 5:9])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(im.data)), big)
    (small,) = open_images(tmp_path / "img10.npy", "ZYX", read_source_func=load_npy_mmap)
    np.testing.assert_array_equal(small.data.compute(), folder["img10.npy"])


def test_dask_and_zarr_results_stay_lazy(tmp_path: Path) -> None:
    arr = np.arange(2 * 16 * 16, dtype="float32").reshape(2, 16, 16)
    zarr.create_array(tmp_path / "a.zarr", data=arr, chunks=(1, 8, 4))
    np.save(tmp_path / "a.npy", arr)
    lazy = da.from_array(arr, chunks=(1, 4, 4))

    (im,) = open_images(tmp_path / "a.npy", "CYX", read_source_func=lambda p, a: lazy)
    assert im.data is lazy
    (rechunked,) = open_images(
        tmp_path / "a.npy", "CYX", read_source_func=lambda p, a: lazy, chunks=(2, 16, 16)
    )
    assert rechunked.data.chunks == ((2,), (16,), (16,))

    def read_zarr(path: Path, axes: str) -> Any:
        return zarr.open_array(tmp_path / "a.zarr", mode="r")

    (z,) = open_images(tmp_path / "a.npy", "CYX", read_source_func=read_zarr)
    assert z.data.chunks == ((1, 1), (8, 8), (4,) * 4)
    np.testing.assert_array_equal(z.data.compute(), arr)


def test_read_kwargs_are_passed(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((4, 4)))

    def read(path: Path, axes: str, scale: float = 1.0) -> np.ndarray:
        return np.load(path) * scale

    (im,) = open_images(tmp_path / "a.npy", "YX", read_source_func=read, read_kwargs={"scale": 3})
    assert float(im.data.sum().compute()) == 48.0


def test_chunked_loader_opens_per_task(tmp_path: Path, folder: dict[str, np.ndarray]) -> None:
    CALLS.clear()
    with dask.config.set(scheduler=_raise_scheduler):
        images = open_images(
            [tmp_path / "img2.npy", tmp_path / "sub" / "img1.npy"],
            axes="ZYX",
            chunked_loader=counting_mmap,
            chunks=(1, 10, 30),
        )
    assert len(CALLS) == 2  # one metadata call per file, no pixels
    graph = dict(images[0].data.__dask_graph__())
    assert any(isinstance(getattr(v, "inner", v), ChunkedLoaderReader) for v in graph.values())
    assert len(pickle.dumps(graph)) < 10_000
    CALLS.clear()
    patch = images[1].data[2, 12:15].compute(scheduler="sync")
    np.testing.assert_array_equal(patch, folder["sub/img1.npy"][2, 12:15])
    assert len(CALLS) == 1  # one task, one loader call


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(1, 30)),
    data=st.data(),
)
def test_chunked_loader_pixels_on_random_chunkings(
    tmp_path: Path, folder: dict[str, np.ndarray], chunks: tuple[int, ...], data: st.DataObject
) -> None:
    loader = functools.partial(np.load, mmap_mode="r")
    (im,) = open_images(tmp_path / "img10.npy", axes="ZYX", chunked_loader=loader, chunks=chunks)
    ref = np.load(tmp_path / "img10.npy")
    y0, y1 = sorted(data.draw(st.tuples(st.integers(0, 20), st.integers(0, 20))))
    x0 = data.draw(st.integers(0, 29))
    sl = (slice(None), slice(y0, y1), slice(x0, None, 2))
    np.testing.assert_array_equal(im.data[sl].compute(), ref[sl])


def test_custom_wins_over_tiff_for_folders_and_tiff_names(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((4, 4)))
    (tmp_path / "x.npy").rename(tmp_path / "x.tif")
    (im,) = open_images(tmp_path / "x.tif", "YX", read_source_func=load_npy)
    assert im.name == "x.tif"


def test_errors(tmp_path: Path, folder: dict[str, np.ndarray]) -> None:
    f = tmp_path / "img2.npy"
    with pytest.raises(AxesError, match=r"img2\.npy: custom formats carry no axes.*3-D"):
        open_images(f, read_source_func=load_npy)
    with pytest.raises(AxesError, match=r"img2\.npy: axes 'YX' have 2 letters but.*\(3, 20, 30\)"):
        open_images(f, "YX", chunked_loader=counting_mmap)
    with pytest.raises(InputError, match="give exactly one callable"):
        open_images(f, "ZYX", read_source_func=load_npy, chunked_loader=counting_mmap)
    with pytest.raises(InputError, match="give exactly one callable"):
        open_images(f, "ZYX", read_source_func="np.load")
    with pytest.raises(InputError, match=r"unknown option\(s\) \['pattern'\]"):
        open_images(f, "ZYX", read_source_func=load_npy, pattern="*")
    with pytest.raises(SourceNotFoundError, match=r"no file below this folder matches.*\*\.czi"):
        open_images(tmp_path, "ZYX", read_source_func=load_npy, extension_filter="czi")
    with pytest.raises(SourceNotFoundError, match=r"missing\.npy: no such file or folder"):
        open_images(tmp_path / "missing.npy", "ZYX", read_source_func=load_npy)
    with pytest.raises(InputError, match="mixes paths and URIs"):
        open_images([str(f), f"file://{f}"], "ZYX", read_source_func=load_npy)
