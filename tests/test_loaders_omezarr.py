"""OME-Zarr (NGFF 0.4 and 0.5) loader: one image per OME image / series, axes from metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.io import parse_url
from ome_zarr.writer import write_image

from caredask.errors import AxesError, FormatError, InputError
from caredask.loaders import open_images
from tests.conftest_remote import HttpStore, http_store
from tests.test_loaders_zarr import _pixel_reads, _raise_scheduler, reads

__all__ = ["http_store", "reads"]  # fixtures, imported for pytest

IMG = np.random.default_rng(7).integers(0, 4000, (2, 4, 32, 24)).astype("uint16")


def _write_ome_zarr_py(path: Path, version: str, img: np.ndarray = IMG) -> None:
    """ome-zarr-py: czyx, levels 's0' (full) and 's1' (2x down in y, x)."""
    fmt = FormatV05() if version == "0.5" else FormatV04()
    store = parse_url(str(path), mode="w", fmt=fmt).store
    root = zarr.group(store=store, zarr_format=fmt.zarr_format, overwrite=True)
    write_image(
        img, root, axes="czyx", fmt=fmt, scale_factors=[2],
        storage_options={"chunks": (1, 2, 16, 16)},
    )  # fmt: skip


def _write_by_hand(path: Path, version: str, levels: list[np.ndarray], axes: str) -> zarr.Group:
    """zarr-python only: NGFF multiscales metadata and one array per level ('0', '1', ...)."""
    fmt = 3 if version == "0.5" else 2
    g = zarr.open_group(path, mode="w", zarr_format=fmt)
    types = {"t": "time", "c": "channel"}
    ms: dict[str, Any] = {
        "name": "image",
        "axes": [{"name": a, "type": types.get(a, "space")} for a in axes],
        "datasets": [
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [1] * 5}]}
            for i in range(len(levels))
        ],
    }
    if fmt == 3:
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        g.attrs["multiscales"] = [dict(ms, version="0.4")]
    for i, lv in enumerate(levels):
        kw: dict[str, Any] = {"chunks": (1,) * (lv.ndim - 2) + (8, 8)}
        if fmt == 3:
            kw["dimension_names"] = list(axes)
        else:
            kw["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        g.create_array(str(i), data=lv, **kw)
    return g


def _levels(img: np.ndarray) -> list[np.ndarray]:
    return [img, img[..., ::2, ::2].copy()]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_py_image_opens_level0_once(tmp_path: Path, version: str) -> None:
    _write_ome_zarr_py(tmp_path / "img.ome.zarr", version)
    (im,) = open_images(str(tmp_path / "img.ome.zarr"))
    assert (im.name, im.axes, im.data.shape) == ("img.ome.zarr", "CZYX", IMG.shape)
    assert im.source == str(tmp_path / "img.ome.zarr" / "s0")
    assert im.data.chunks[:2] == ((1, 1), (2, 2))
    np.testing.assert_array_equal(im.data.compute(), IMG)
    (low,) = open_images(str(tmp_path / "img.ome.zarr"), level=1)
    eager = zarr.open_array(tmp_path / "img.ome.zarr" / "s1", mode="r")[...]
    assert low.data.shape == (2, 4, 16, 12)
    np.testing.assert_array_equal(low.data.compute(), eager)
    (by_path,) = open_images(str(tmp_path / "img.ome.zarr"), level="s1", axes="CZYX")
    assert by_path.data.name == low.data.name


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_hand_written_tczyx(tmp_path: Path, version: str) -> None:
    img = np.random.default_rng(1).random((3, 2, 4, 16, 24)).astype("float32")
    _write_by_hand(tmp_path / "h.zarr", version, _levels(img), "tczyx")
    (im,) = open_images(f"file://{tmp_path}/h.zarr")
    assert (im.axes, im.data.chunks[-1]) == ("TCZYX", (8, 8, 8))
    np.testing.assert_array_equal(im.data.compute(), img)
    (low,) = open_images(str(tmp_path / "h.zarr"), level=1)
    np.testing.assert_array_equal(low.data.compute(), img[..., ::2, ::2])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_uri_to_a_level_array_takes_axes_from_the_image(tmp_path: Path, version: str) -> None:
    img = IMG[0]
    _write_by_hand(tmp_path / "h.zarr", version, _levels(img), "zyx")
    (im,) = open_images(f"file://{tmp_path}/h.zarr/1")
    assert (im.name, im.axes) == ("h.zarr/1", "ZYX")
    np.testing.assert_array_equal(im.data.compute(), img[..., ::2, ::2])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_axes_contradicting_given_axes(tmp_path: Path, version: str) -> None:
    _write_ome_zarr_py(tmp_path / "img.ome.zarr", version)
    assert open_images(str(tmp_path / "img.ome.zarr"), axes="czyx")[0].axes == "CZYX"
    with pytest.raises(
        AxesError, match=r"img\.ome\.zarr: axes 'ZCYX' were given but the OME .* say 'CZYX'"
    ):
        open_images(str(tmp_path / "img.ome.zarr"), axes="ZCYX")
    with pytest.raises(AxesError, match=r"axes 'ZYX' have 3 letters but the array has 4"):
        open_images(str(tmp_path / "img.ome.zarr"), axes="ZYX")


def test_missing_level(tmp_path: Path) -> None:
    _write_ome_zarr_py(tmp_path / "img.ome.zarr", "0.5")
    with pytest.raises(InputError, match=r"level=5 does not exist.*2 level\(s\).*'s0', 's1'"):
        open_images(str(tmp_path / "img.ome.zarr"), level=5)


def test_opening_reads_no_pixels_and_level1_is_never_read(tmp_path: Path, reads: list[str]) -> None:
    _write_ome_zarr_py(tmp_path / "img.ome.zarr", "0.5")
    reads.clear()
    with dask.config.set(scheduler=_raise_scheduler):
        (im,) = open_images(str(tmp_path / "img.ome.zarr"))
    assert _pixel_reads(reads) == []
    im.data[1, 3, 20:24, 0:5].compute(scheduler="sync")
    assert _pixel_reads(reads) == ["s0/c/1/1/1/0"]


def _bioformats2raw(path: Path, version: str, series_list: bool) -> list[np.ndarray]:
    fmt = 3 if version == "0.5" else 2
    root = zarr.open_group(path, mode="w", zarr_format=fmt)
    imgs = [IMG[:, :2], IMG[:1, :, :16]]
    for i, img in enumerate(imgs):
        _write_by_hand(path / str(i), version, [img], "czyx")
    ome = root.create_group("OME")
    layout: dict[str, Any] = {"bioformats2raw.layout": 3}
    series: dict[str, Any] = {"series": ["0", "1"]} if series_list else {}
    if fmt == 3:
        root.attrs["ome"] = dict(layout, version="0.5")
        ome.attrs["ome"] = dict(series, version="0.5")
    else:
        root.attrs.update(layout)
        ome.attrs.update(series)
    (path / "OME" / "METADATA.ome.xml").write_text("<OME/>")
    return imgs


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("series_list", [True, False])
def test_bioformats2raw_one_image_per_series(
    tmp_path: Path, version: str, series_list: bool
) -> None:
    imgs = _bioformats2raw(tmp_path / "b.zarr", version, series_list)
    images = open_images(str(tmp_path / "b.zarr"))
    assert [(im.name, im.axes) for im in images] == [("b.zarr/0", "CZYX"), ("b.zarr/1", "CZYX")]
    for im, img in zip(images, imgs, strict=True):
        np.testing.assert_array_equal(im.data.compute(), img)


def test_bioformats2raw_without_series(tmp_path: Path) -> None:
    root = zarr.open_group(tmp_path / "b.zarr", mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    with pytest.raises(FormatError, match=r"b\.zarr: a bioformats2raw layout without series"):
        open_images(str(tmp_path / "b.zarr"))


def test_remote_ome_zarr(http_store: HttpStore) -> None:
    _write_ome_zarr_py(http_store.root / "img.ome.zarr", "0.4")
    url = f"{http_store.url}/img.ome.zarr"
    (im,) = open_images(url)
    assert http_store.chunk_requests() == []
    assert (im.axes, im.source) == ("CZYX", f"{url}/s0")
    np.testing.assert_array_equal(im.data.compute(), IMG)
    assert not [p for p in http_store.log if "/s1/" in p]
    imgs = _bioformats2raw(http_store.root / "b.zarr", "0.5", series_list=False)
    images = open_images(f"{http_store.url}/b.zarr")
    assert len(images) == 2
    np.testing.assert_array_equal(images[1].data.compute(), imgs[1])
