"""Vendor formats through bioio: DeltaVision written with ``mrc``, OME-TIFF with tifffile."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import dask
import mrc
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caredask import RawData, generate_training_data, open_images
from caredask.cli.main import main
from caredask.errors import AxesError, FormatError, InputError, MissingDependencyError
from caredask.loaders.bioimage import BioioSceneReader, plan_axes
from caredask.writers.provenance import source_metadata

from .conftest import blob_pair, fail_on_compute


def write_dv(path: Path, a: np.ndarray, dz: float = 0.3, dxy: float = 0.1) -> Path:
    mrc.imsave(str(path), a, metadata={"dx": dxy, "dy": dxy, "dz": dz})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("bioio")
    rs = np.random.RandomState(0)
    stack = rs.randint(0, 4000, (12, 40, 36)).astype(np.uint16)
    write_dv(d / "stack.dv", stack)
    chans = rs.randint(0, 900, (3, 20, 24)).astype(np.uint16)
    zs = rs.randint(0, 900, (2, 16, 20)).astype(np.uint16)
    with tifffile.TiffWriter(d / "two.ome.tif", ome=True) as w:
        meta = {"axes": "CYX", "Channel": {"Name": ["dapi", "gfp", "rfp"]}}
        w.write(chans, metadata={**meta, "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
        w.write(zs, metadata={"axes": "ZYX"})
    tczyx = rs.randint(0, 900, (2, 3, 5, 16, 12)).astype(np.uint16)
    tifffile.imwrite(d / "tczyx.ome.tif", tczyx, ome=True, metadata={"axes": "TCZYX"})
    return {"dir": d, "stack": stack, "chans": chans, "zs": zs, "tczyx": tczyx}


def test_dv_axes_metadata_and_pixels(files: dict[str, Any]) -> None:
    with dask.config.set(scheduler=fail_on_compute):  # opening reads no pixel
        (im,) = open_images(files["dir"] / "stack.dv")
    assert (im.name, im.axes, im.data.shape) == ("stack.dv", "ZYX", (12, 40, 36))
    assert im.metadata["reader"] == "bioio_dv"
    assert im.metadata["physical_pixel_sizes"] == {"Z": 0.3, "Y": 0.1, "X": 0.1}
    np.testing.assert_array_equal(im.data.compute(), files["stack"])
    # axes that keep singletons, or reorder the dimensions
    (full,) = open_images(files["dir"] / "stack.dv", "TCZYX")
    assert full.data.shape == (1, 1, 12, 40, 36)
    np.testing.assert_array_equal(full.data[0, 0].compute(), files["stack"])
    (yzx,) = open_images(files["dir"] / "stack.dv", "yzx")
    np.testing.assert_array_equal(yzx.data.compute(), files["stack"].transpose(1, 0, 2))


def test_ome_tiff_scenes_match_native_reader(files: dict[str, Any]) -> None:
    path = files["dir"] / "two.ome.tif"
    ims = open_images(path, reader="bioio")
    assert [im.name for im in ims] == ["two.ome.tif@0", "two.ome.tif@1"]
    assert [im.axes for im in ims] == ["CYX", "ZYX"]
    assert ims[0].metadata["channel_names"] == ["dapi", "gfp", "rfp"]
    assert ims[0].metadata["physical_pixel_sizes"] == {"Z": None, "Y": 0.25, "X": 0.25}
    for k, im in enumerate(ims):
        (native,) = open_images(path, series=k)
        assert native.axes == im.axes and native.data.dtype == im.data.dtype
        np.testing.assert_array_equal(im.data.compute(), native.data.compute())
    (native,) = open_images(files["dir"] / "tczyx.ome.tif")
    (bio,) = open_images(files["dir"] / "tczyx.ome.tif", reader="bioio")
    assert native.axes == bio.axes == "TCZYX"
    np.testing.assert_array_equal(bio.data.compute(), native.data.compute())


def test_rechunked_to_whole_planes_and_picklable(files: dict[str, Any]) -> None:
    path = files["dir"] / "stack.dv"
    a, b = open_images(path)[0].data, open_images(path)[0].data
    assert a.name == b.name  # deterministic
    assert a.chunks == ((12,), (40,), (36,))  # 12 one-plane chunks of bioio -> one block
    small = open_images(path, chunks=(5, 40, 36))[0].data
    assert small.numblocks == (3, 1, 1) and small.name != a.name
    restored = pickle.loads(pickle.dumps(small))
    np.testing.assert_array_equal(restored.compute(), files["stack"])
    readers = [v for v in dict(a.__dask_graph__()).values() if isinstance(v, BioioSceneReader)]
    assert readers and len(pickle.dumps(dict(a.__dask_graph__()))) < 5_000
    assert readers[0].read_chunks == (1, 40, 36)  # bioio-dv decodes one plane at a time


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.tuples(st.integers(1, 12), st.integers(1, 40), st.integers(1, 36)),
    data=st.data(),
)
def test_pixels_on_random_chunkings(
    files: dict[str, Any], chunks: tuple[int, ...], data: st.DataObject
) -> None:
    im = open_images(files["dir"] / "stack.dv", chunks=chunks)[0]
    sl = tuple(
        slice(*sorted(data.draw(st.tuples(st.integers(0, n), st.integers(0, n)))))
        for n in (12, 40, 36)
    )
    np.testing.assert_array_equal(im.data[sl].compute(), files["stack"][sl])


def test_runs_on_distributed_workers(files: dict[str, Any]) -> None:
    distributed = pytest.importorskip("distributed")
    im = open_images(files["dir"] / "stack.dv", chunks=(4, 40, 36))[0]
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = client.compute(im.data[1:11, 5:30].sum(axis=0)).result()
    np.testing.assert_array_equal(got, files["stack"][1:11, 5:30].sum(axis=0))


def test_plan_axes() -> None:
    dims, shape = "TCZYX", (1, 2, 7, 8, 9)
    assert plan_axes("f", dims, shape, None) == ("CZYX", (1, 2, 3, 4))
    assert plan_axes("f", dims, shape, "ZCYX") == ("ZCYX", (2, 1, 3, 4))
    assert plan_axes("f", dims, shape, "SCZYX", right_align=True)[0] == "CZYX"
    assert plan_axes("f", "TCZYXS", (1, 1, 1, 8, 9, 3), None) == ("YXC", (3, 4, 5))
    with pytest.raises(AxesError, match=r"f: axes 'ZYX' do not fit.*C has several elements"):
        plan_axes("f", dims, shape, "ZYX")
    with pytest.raises(AxesError, match=r"no dimension S; .*use e.g. axes='CZYX'"):
        plan_axes("f", dims, shape, "SCZYX")
    with pytest.raises(AxesError, match=r"f: bioio dimension\(s\) M=4 .*have no caredask axis"):
        plan_axes("f", "MZYX", (4, 7, 8, 9), None)


def _training(raw: RawData) -> tuple[np.ndarray, np.ndarray, str]:
    X, Y, axes = generate_training_data(raw, (4, 16, 16), 6, seed=5, verbose=False)
    return np.asarray(X), np.asarray(Y), axes


def test_training_data_from_dv_identical_to_tiff(tmp_path: Path) -> None:
    for k in range(2):
        x, y = blob_pair((10, 48, 40), seed=k)
        for sub, a in (("low", x), ("GT", y)):
            (tmp_path / "dv" / sub).mkdir(parents=True, exist_ok=True)
            (tmp_path / "tif" / sub).mkdir(parents=True, exist_ok=True)
            write_dv(tmp_path / "dv" / sub / f"im{k}.dv", a)
            tifffile.imwrite(tmp_path / "tif" / sub / f"im{k}.tif", a)
    ref = _training(RawData.from_folder(tmp_path / "tif", ["low"], "GT", "ZYX", sort=True))
    dv = _training(RawData.from_folder(tmp_path / "dv", ["low"], "GT", "ZYX", "*.dv", sort=True))
    src = RawData.from_sources(tmp_path / "dv" / "low", tmp_path / "dv" / "GT")
    for got in (dv, _training(src)):
        assert got[2] == ref[2]
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    meta = source_metadata(src)
    assert len(meta) == 4 and all(m["reader"] == "bioio_dv" for m in meta.values())


def test_vendor_files_found_in_folders(tmp_path: Path, files: dict[str, Any]) -> None:
    write_dv(tmp_path / "b.dv", files["stack"])
    tifffile.imwrite(tmp_path / "a.tif", files["stack"])
    (tmp_path / "notes.txt").write_text("not an image")
    ims = open_images(tmp_path, "ZYX")
    assert [im.name for im in ims] == ["a.tif", "b.dv"]
    assert ims[0].metadata == {} and ims[1].metadata["reader"] == "bioio_dv"
    assert [im.name for im in open_images(tmp_path, "ZYX", reader="bioio")] == ["a.tif", "b.dv"]


def test_missing_plugin(tmp_path: Path, files: dict[str, Any], monkeypatch: Any) -> None:
    path = write_dv(tmp_path / "cells.dv", files["stack"])
    monkeypatch.setitem(sys.modules, "bioio_dv", None)  # import fails: plugin not installed
    with pytest.raises(
        MissingDependencyError,
        match=r"cells\.dv: reading \.dv files needs the bioio plugin bioio-dv, which is not "
        r"installed; run `pip install bioio-dv`$",
    ):
        open_images(path)
    (tmp_path / "run.sldy").write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, "bioio_sldy", None)
    with pytest.raises(ImportError, match=r"run\.sldy: .*`pip install bioio-sldy`$"):
        open_images(tmp_path / "run.sldy")


def test_missing_bioio(tmp_path: Path, files: dict[str, Any], monkeypatch: Any) -> None:
    path = write_dv(tmp_path / "cells.dv", files["stack"])
    monkeypatch.setitem(sys.modules, "bioio", None)
    with pytest.raises(
        MissingDependencyError,
        match=r"cells\.dv: reading this file needs bioio, which is not installed; run "
        r"`pip install caredask\[bioio\]`$",
    ):
        open_images(path)
    (tmp_path / "x.sldy").write_bytes(b"\0" * 64)
    with pytest.raises(MissingDependencyError, match=r"`pip install caredask\[bioio\] bioio-sldy`"):
        open_images(tmp_path / "x.sldy")


def test_corrupt_and_truncated_files(tmp_path: Path, files: dict[str, Any]) -> None:
    (tmp_path / "junk.dv").write_bytes(b"\x17" * 2000)
    with pytest.raises(FormatError, match=r"junk\.dv: not readable with bioio_dv .*export it"):
        open_images(tmp_path / "junk.dv")
    good = write_dv(tmp_path / "cut.dv", files["stack"]).read_bytes()
    (tmp_path / "cut.dv").write_bytes(good[: len(good) - 40 * 36 * 2 * 3])
    with pytest.raises(FormatError, match=r"cut\.dv: reading the metadata of scene 0 with bioio"):
        open_images(tmp_path / "cut.dv")
    # a file damaged after it was opened is refused when its pixels are read
    path = write_dv(tmp_path / "later.dv", files["stack"])
    (im,) = open_images(path)
    path.write_bytes(good[:1000])
    with pytest.raises(FormatError, match=r"later\.dv: the file changed after it was opened"):
        im.data.compute()


def test_reader_option_errors(files: dict[str, Any]) -> None:
    with pytest.raises(InputError, match=r"reader='bioformats' is not known; use reader='bioio'"):
        open_images(files["dir"] / "stack.dv", reader="bioformats")
    with pytest.raises(InputError, match=r"unknown option\(s\) \['series'\] for bioio sources"):
        open_images(files["dir"] / "stack.dv", series=1)
    with pytest.raises(InputError, match=r"reader='bioio' reads local files"):
        open_images(np.zeros((4, 4)), reader="bioio")


def test_cli_inspect_patches_and_errors(
    tmp_path: Path, files: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = blob_pair((10, 48, 40), seed=1)
    src, tgt = write_dv(tmp_path / "x.dv", x), write_dv(tmp_path / "y.dv", y)
    assert main(["inspect", str(src)]) == 0
    out = capsys.readouterr().out
    assert "axes: ZYX" in out and "reader: bioio_dv" in out
    assert "pixel size (um): Z 0.3  Y 0.1  X 0.1" in out
    assert main(["inspect", "--reader", "bioio", str(files["dir"] / "two.ome.tif")]) == 0
    out = capsys.readouterr().out
    assert "two.ome.tif@1" in out and "channels: dapi, gfp, rfp" in out
    store = tmp_path / "t.zarr"
    common = ["--patch-size", "4", "16", "16", "-k", "3", "-q"]
    args = ["patches", "--source", str(src), "--target", str(tgt), "-o", str(store), *common]
    assert main(args) == 0
    import zarr

    record = zarr.open_group(store, mode="r").attrs["caredask"]
    meta = record["source_metadata"][str(src)]
    assert meta["physical_pixel_sizes"] == {"Z": 0.3, "Y": 0.1, "X": 0.1}
    tifffile.imwrite(tmp_path / "x.tif", x)
    tifffile.imwrite(tmp_path / "y.tif", y)
    npz = [tmp_path / "dv.npz", tmp_path / "tif.npz"]
    for (s, t), o in zip([(src, tgt), (tmp_path / "x.tif", tmp_path / "y.tif")], npz, strict=True):
        args = ["patches", "--source", str(s), "--target", str(t), "-o", str(o), *common]
        assert main([*args, "--reader", "bioio"]) == 0
    a, b = np.load(npz[0]), np.load(npz[1])
    assert np.array_equal(a["X"], b["X"]) and np.array_equal(a["Y"], b["Y"])
    capsys.readouterr()
    (tmp_path / "bad.nd2").write_bytes(b"\0" * 100)
    assert main(["inspect", str(tmp_path / "bad.nd2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caredask: error: ") and err.count("\n") == 1 and "bad.nd2" in err


def test_cli_index_and_dataset_take_vendor_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for sub in ("low", "GT"):
        (tmp_path / sub).mkdir()
    for k in range(3):
        x, y = blob_pair((8, 40, 40), seed=k)
        write_dv(tmp_path / "low" / f"c{k}.dv", x)
        write_dv(tmp_path / "GT" / f"c{k}.dv", y)
    index = tmp_path / "index.json"
    assert main(["index", str(tmp_path / "low"), "-o", str(index), "--reader", "bioio"]) == 0
    assert "3 images from 3 units, 3 accepted" in capsys.readouterr().out
    out = tmp_path / "ds"
    args = ["dataset", "--source", str(tmp_path / "low"), "--target", str(tmp_path / "GT")]
    args += ["-o", str(out), "--patch-size", "4", "16", "16", "-k", "2", "--preview", "0", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    assert "2 training / 1 test images" in capsys.readouterr().out
