"""CZI loader (pylibCZIrw): scenes, channels, Z/T, mosaics, compression, laziness, errors."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caredask.errors import AxesError, FormatError, SourceNotFoundError
from caredask.loaders import open_images
from caredask.loaders.czi import CziSceneReader
from tests.oracles import oracle

pyczi = oracle("pylibCZIrw.czi", "pylibCZIrw")

ZSTD = "zstd1:ExplicitLevel=1;PreProcess=HiLoByteUnpack"
ORIGINS = [(0, 0), (100, 50), (-30, 200)]  # (x, y) of each scene


def _write(
    path: Path,
    data: np.ndarray,
    tiles_x: int = 1,
    compress: bool = True,
    depth: str = "Z",
    origins: list[tuple[int, int]] = ORIGINS,
) -> None:
    """Write ``data`` (S, C, D, Y, X) with D along ``depth``; ``tiles_x`` tiles per plane."""
    s_, c_, d_, _, w = data.shape
    opts = {"compression_options": ZSTD} if compress else {}
    tw = w // tiles_x
    with pyczi.create_czi(str(path), exist_ok=True, **opts) as wr:
        for s, c, d, t in np.ndindex(s_, c_, d_, tiles_x):
            x0, y0 = origins[s]
            wr.write(
                data[s, c, d, :, t * tw : (t + 1) * tw][..., None],
                location=(x0 + t * tw, y0),
                plane={"C": c, depth: d},
                scene=s,
            )


def _eager(path: Path, scene: int, planes: list[dict[str, int]]) -> list[np.ndarray]:
    """Whole scene rectangles, plane by plane, read directly with pylibCZIrw."""
    with pyczi.open_czi(str(path)) as r:
        rect = r.scenes_bounding_rectangle[scene]
        roi = (rect.x, rect.y, rect.w, rect.h)
        return [r.read(roi=roi, plane=p, scene=scene)[..., 0] for p in planes]


def _rand(shape: tuple[int, ...], seed: int, dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, shape).astype(dtype)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("czi")
    zstack = _rand((3, 2, 4, 30, 40), 0)
    _write(d / "mosaic.czi", zstack, tiles_x=2)
    _write(d / "plain.czi", zstack, tiles_x=1, compress=False)
    tseries = _rand((2, 2, 3, 20, 24), 1, "uint8")
    _write(d / "time.czi", tseries, depth="T")
    fl = np.random.default_rng(2).random((1, 1, 1, 16, 16)).astype("float32")
    _write(d / "float.czi", fl)
    with pyczi.create_czi(str(d / "rgb.czi"), exist_ok=True) as wr:
        wr.write(np.zeros((10, 10, 3), "uint8"), plane={"C": 0})
    (d / "corrupt.czi").write_bytes(b"ZISRAWFILE" + bytes(500))
    zt = _rand((1, 1, 6, 8, 8), 3)
    with pyczi.create_czi(str(d / "zt.czi"), exist_ok=True) as wr:
        for i in range(6):
            wr.write(zt[0, 0, i][..., None], plane={"C": 0, "T": i // 3, "Z": i % 3}, scene=0)
    return {"dir": d, "zstack": zstack, "tseries": tseries, "float": fl, "zt": zt}


@pytest.mark.parametrize("name", ["mosaic.czi", "plain.czi"])
def test_one_image_per_scene_without_s_axis(files: dict[str, Any], name: str) -> None:
    path = files["dir"] / name
    images = open_images(str(path), axes="SCZYX")
    assert [im.name for im in images] == [f"{name}@0", f"{name}@1", f"{name}@2"]
    assert {im.axes for im in images} == {"CZYX"}
    assert images[1].source == f"{path}@1"
    for s, im in enumerate(images):
        assert im.data.shape == (2, 4, 30, 40) and im.data.dtype == np.uint16
        planes = [{"C": c, "Z": z} for c in range(2) for z in range(4)]
        eager = np.stack(_eager(path, s, planes)).reshape(2, 4, 30, 40)
        np.testing.assert_array_equal(im.data.compute(), eager)
        np.testing.assert_array_equal(eager, files["zstack"][s])


def test_axes_inferred_and_t_series(files: dict[str, Any]) -> None:
    assert open_images(str(files["dir"] / "mosaic.czi"))[0].axes == "CZYX"
    images = open_images(files["dir"] / "time.czi")
    assert [im.axes for im in images] == ["CTYX", "CTYX"]
    images = open_images(str(files["dir"] / "time.czi"), axes="sctyx")
    np.testing.assert_array_equal(images[1].data.compute(), files["tseries"][1])
    assert images[0].data.dtype == np.uint8
    (fl,) = open_images(str(files["dir"] / "float.czi"), axes="SCYX")
    assert (fl.axes, fl.data.dtype) == ("CYX", np.float32)
    np.testing.assert_array_equal(fl.data.compute(), files["float"][0, :, 0])


def test_planes_not_named_by_axes_form_s(files: dict[str, Any]) -> None:
    path = files["dir"] / "zt.czi"
    with pytest.raises(AxesError, match=r"3 Z planes and 2 T points; pass axes='SCZYX'"):
        open_images(str(path))
    (im,) = open_images(str(path), axes="SCZYX")
    assert (im.axes, im.data.shape) == ("SCZYX", (2, 1, 3, 8, 8))
    np.testing.assert_array_equal(im.data.compute().reshape(6, 8, 8), files["zt"][0, 0])
    (flat,) = open_images(str(path), axes="SCYX")
    assert (flat.axes, flat.data.shape) == ("SCYX", (6, 1, 8, 8))
    np.testing.assert_array_equal(flat.data.compute()[:, 0], files["zt"][0, 0])


def test_planes_not_starting_at_zero(tmp_path: Path) -> None:
    with pyczi.create_czi(str(tmp_path / "off.czi"), exist_ok=True) as wr:
        wr.write(np.full((10, 12), 5, "uint8"), plane={"C": 1, "Z": 2})
        wr.write(np.full((10, 12), 7, "uint8"), plane={"C": 2, "Z": 4})
    (im,) = open_images(str(tmp_path / "off.czi"))
    assert (im.name, im.axes, im.data.shape) == ("off.czi@0", "CZYX", (2, 3, 10, 12))
    ref = np.zeros((2, 3, 10, 12), "uint8")
    ref[0, 0], ref[1, 2] = 5, 7
    np.testing.assert_array_equal(im.data.compute(), ref)


@pytest.mark.parametrize("axes", ["ZYX", "SCXZY", "TCSYX", "SCZTYX", "CYX", "SYX"])
def test_invalid_axes(files: dict[str, Any], axes: str) -> None:
    with pytest.raises(AxesError, match=r"not valid for a CZI; use one of SCYX, SCZYX, SCTYX"):
        open_images(str(files["dir"] / "mosaic.czi"), axes=axes)


def test_depth_axis_absent_from_file(files: dict[str, Any]) -> None:
    with pytest.raises(AxesError, match=r"ask for T as the depth axis, but the CZI has 1 T"):
        open_images(str(files["dir"] / "mosaic.czi"), axes="SCTYX")


def test_bad_files(files: dict[str, Any]) -> None:
    d = files["dir"]
    with pytest.raises(FormatError, match=r"rgb\.czi: unsupported CZI pixel type Bgr24.*grey"):
        open_images(str(d / "rgb.czi"), axes="SCYX")
    with pytest.raises(FormatError, match=r"corrupt\.czi: reading the CZI failed.*damaged"):
        open_images(str(d / "corrupt.czi"), axes="SCYX")
    with pytest.raises(SourceNotFoundError, match=r"missing\.czi: no such CZI file"):
        open_images(str(d / "missing.czi"), axes="SCYX")


def test_lazy_tile_reads(files: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    orig = pyczi.CziReader.read

    def read(self: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append((kwargs["roi"], tuple(sorted(kwargs["plane"].items()))))
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(pyczi.CziReader, "read", read)

    def no_compute(*a: Any, **k: Any) -> None:
        raise AssertionError("computed")

    with dask.config.set(scheduler=no_compute):
        images = open_images(str(files["dir"] / "mosaic.czi"), axes="SCZYX", chunks=(1, 1, 16, 16))
    assert calls == []
    im = images[1]
    patch = im.data[1, 2:4, 3:8, 10:20].compute(scheduler="sync")
    np.testing.assert_array_equal(patch, files["zstack"][1, 1, 2:4, 3:8, 10:20])
    # two planes x chunks (row 0; columns 0 and 1): four reads, each only of the patch's part
    assert len(calls) == 4
    assert {c[0] for c in calls} == {(110, 53, 6, 5), (116, 53, 4, 5)}
    assert {c[1] for c in calls} == {(("C", 1), ("T", 0), ("Z", 2)), (("C", 1), ("T", 0), ("Z", 3))}


def test_deterministic_names_and_pickling(files: dict[str, Any]) -> None:
    path = str(files["dir"] / "mosaic.czi")
    a = open_images(path, axes="SCZYX")
    b = open_images(path, axes="SCZYX")
    assert [im.data.name for im in a] == [im.data.name for im in b]
    assert len({im.data.name for im in a}) == 3
    assert a[0].data.chunks == ((1, 1), (1,) * 4, (30,), (40,))
    assert len(pickle.dumps(dict(a[0].data.__dask_graph__()))) < 20_000
    restored = pickle.loads(pickle.dumps(a[2].data))
    np.testing.assert_array_equal(restored.compute(), files["zstack"][2])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 30), st.integers(1, 40)),
    scene=st.integers(0, 2),
    data=st.data(),
)
def test_pixels_on_random_chunkings(
    files: dict[str, Any], chunks: tuple[int, ...], scene: int, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(["mosaic.czi", "plain.czi"]))
    im = open_images(str(files["dir"] / name), axes="SCZYX", chunks=chunks)[scene]
    y0, y1 = sorted(data.draw(st.tuples(st.integers(0, 30), st.integers(0, 30))))
    x0, x1 = sorted(data.draw(st.tuples(st.integers(0, 40), st.integers(0, 40))))
    sl = (slice(None), data.draw(st.integers(0, 3)), slice(y0, y1), slice(x0, x1))
    np.testing.assert_array_equal(im.data[sl].compute(), files["zstack"][scene][sl])


def test_reader_fancy_keys(files: dict[str, Any]) -> None:
    im = open_images(str(files["dir"] / "plain.czi"), axes="SCZYX")[0]
    reader = im.data.dask.values()  # the reader object sits in the graph
    rd = next(v for v in reader if isinstance(v, CziSceneReader))
    ref = files["zstack"][0]
    # orthogonal indexing (as zarr does), not numpy's mixed advanced indexing
    np.testing.assert_array_equal(rd[1, ..., ::3, [5, 1]], ref[1, ..., ::3, :][..., [5, 1]])
    np.testing.assert_array_equal(rd[0, 1:1], ref[0, 1:1])
