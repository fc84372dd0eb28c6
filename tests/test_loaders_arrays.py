"""Tests of the array loader (caredask.loaders.arrays)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from caredask.errors import AxesError, InputError
from caredask.loaders import open_images
from caredask.loaders.arrays import is_array_like, probe_arrays
from tests.strategies import regular_chunks


def _x(shape: tuple[int, ...] = (4, 10, 12), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.uint16)


def _raising_scheduler(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a graph was computed")


def test_one_numpy_array_is_one_image() -> None:
    x = _x()
    (img,) = open_images(x, axes="zyx")
    assert img.axes == "ZYX" and img.name == "array[0]" and img.source == "numpy.ndarray"
    assert isinstance(img.data, da.Array)
    np.testing.assert_array_equal(img.data.compute(), x)


def test_list_and_tuple_one_image_each() -> None:
    xs = [_x((5, 6), 1), _x((7, 8), 2), da.from_array(_x((3, 4), 3), chunks=2)]
    imgs = open_images(xs, axes="YX")
    assert [i.name for i in imgs] == ["array[0]", "array[1]", "array[2]"]
    for img, x in zip(imgs, xs, strict=True):
        np.testing.assert_array_equal(img.data.compute(), np.asarray(x))
    assert len(open_images(tuple(xs), axes="YX")) == 3


def test_stack_only_split_on_request() -> None:
    x = _x((3, 5, 6))
    (whole,) = open_images(x, axes="ZYX")
    assert whole.data.shape == (3, 5, 6)
    imgs = open_images(x, axes="YX", stack=True)
    assert [i.name for i in imgs] == ["array[0]", "array[1]", "array[2]"]
    for i, img in enumerate(imgs):
        np.testing.assert_array_equal(img.data.compute(), x[i])
    imgs = open_images([x, x[:2]], axes="YX", stack=True, chunks=(2, 3))
    assert len(imgs) == 5 and imgs[4].data.chunksize == (2, 3)
    with pytest.raises(AxesError, match=r"array\[0\].*each image arr\[i\].*\(5, 6\)"):
        open_images(x, axes="ZYX", stack=True)


def test_names_deterministic() -> None:
    x = _x()
    a = open_images(x, axes="ZYX")[0].data
    assert open_images(x.copy(), axes="ZYX")[0].data.name == a.name
    y = x.copy()
    y[0, 0, 0] += 1
    assert open_images(y, axes="ZYX")[0].data.name != a.name


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_chunks(data: st.DataObject) -> None:
    x = _x((5, 9, 11), 7)
    chunks = data.draw(regular_chunks(x.shape))
    for source in (x, da.from_array(x, chunks=3)):
        (img,) = open_images(source, axes="ZYX", chunks=chunks)
        assert img.data.chunksize == chunks
        np.testing.assert_array_equal(img.data.compute(), x)


def test_dask_array_kept_as_is() -> None:
    d = da.from_array(_x(), chunks=(1, 5, 5))
    (img,) = open_images(d, axes="ZYX")
    assert img.data is d


def test_axes_required_and_checked() -> None:
    with pytest.raises(AxesError, match=r"array\[0\].*shape \(4, 10, 12\).*pass axes=\.\.\."):
        open_images(_x())
    with pytest.raises(AxesError, match=r"array\[1\]: axes 'YX' .*shape \(4, 10, 12\)"):
        open_images([_x((10, 12)), _x()], axes="YX")
    with pytest.raises(AxesError, match="invalid axis"):
        open_images(_x(), axes="QYX")


def test_bad_dtype_and_options() -> None:
    with pytest.raises(InputError, match="not numeric"):
        open_images(np.array([["a", "b"]]), axes="YX")
    with pytest.raises(InputError, match=r"unknown option.*\['pattern'\]"):
        open_images(_x(), axes="ZYX", pattern="*.tif")


def test_array_likes_stay_lazy(tmp_path: Path) -> None:
    x = _x((4, 16, 16))
    z = zarr.create_array(tmp_path / "a.zarr", shape=x.shape, chunks=(1, 8, 8), dtype=x.dtype)
    z[:] = x
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=x.dtype, shape=x.shape)
    mm[:] = x
    mm.flush()
    ro = np.load(tmp_path / "m.npy", mmap_mode="r")
    with dask.config.set(scheduler=_raising_scheduler):
        imgs = open_images([zarr.open_array(tmp_path / "a.zarr", mode="r"), ro], axes="ZYX")
        more = open_images(zarr.open_array(tmp_path / "a.zarr", mode="r"), axes="YX", stack=True)
        _ = (imgs[0].data[1:3] * 2 + imgs[1].data[1:3]).sum()
    assert imgs[0].data.chunksize[1:] in ((8, 8), (16, 16))
    assert [i.name for i in more] == [f"array[{i}]" for i in range(4)]
    for img in [*imgs, *more]:
        assert isinstance(img.data, da.Array)
    np.testing.assert_array_equal(imgs[0].data.compute(), x)
    np.testing.assert_array_equal(imgs[1].data.compute(), x)
    np.testing.assert_array_equal(more[2].data.compute(), x[2])


def test_probe() -> None:
    assert probe_arrays(_x(), {}) and probe_arrays([_x(), _x()], {})
    assert not probe_arrays("a.tif", {}) and not probe_arrays(Path("a.tif"), {})
    assert not probe_arrays([_x(), "a.tif"], {}) and not probe_arrays([], {})
    assert not is_array_like([1, 2, 3]) and not is_array_like(b"abc")
