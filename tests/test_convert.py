"""caredask convert: sharded OME-Zarr 0.5 from TIFF, Zarr and CZI, bit-identical, streaming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import numpy as np
import ome_zarr_models.v05 as ngff
import pytest
import tifffile
import zarr
from dask.callbacks import Callback
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

import caredask
from caredask.cli.main import main
from caredask.dataset.synthetic import write_tiff_pairs
from caredask.errors import InputError
from caredask.loaders import open_images
from caredask.loaders.codecs import use_zarrs
from caredask.writers.convert import convert_to_zarr, inner_chunks_for, shard_shape_for

pyczi = pytest.importorskip("pylibCZIrw.czi")  # the czi extra is part of the test extra


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, shape).astype("uint16")


def _ome_zarr_py(path: Path) -> tuple[list[str], np.ndarray]:
    """Axes names and level 0 as ome-zarr-py reads them."""
    node = next(iter(Reader(parse_url(str(path)))()))
    return [a["name"] for a in node.metadata["axes"]], np.asarray(node.data[0])


def test_shapes_for_patches_and_file_system() -> None:
    assert inner_chunks_for((3, 40, 300, 200), "CZYX", {"Z": 8, "Y": 32, "X": 32}) == (
        3,
        8,
        32,
        32,
    )
    assert inner_chunks_for((5, 300, 20), "TYX") == (1, 64, 20)
    assert shard_shape_for((512, 2048, 2048), "ZYX", (16, 64, 64), 2) == (256, 512, 512)
    assert shard_shape_for((40, 300, 200), "ZYX", (16, 64, 64), 2, 2**20) == (48, 64, 128)
    assert shard_shape_for((4, 50, 60), "ZYX", (16, 64, 64), 2) == (16, 64, 64)


@pytest.mark.parametrize("zarrs", [True, False], ids=["zarrs", "zarr-python"])
def test_tiff_round_trip_and_metadata(tmp_path: Path, zarrs: bool) -> None:
    x = _rand((40, 150, 130))
    tifffile.imwrite(tmp_path / "a.tif", x)
    out = tmp_path / "a.zarr"
    with use_zarrs(zarrs):
        convert_to_zarr(
            tmp_path / "a.tif",
            out,
            axes="ZYX",
            patch_size={"Z": 8, "Y": 32, "X": 32},
            shard_bytes=200_000,
            scale={"Z": 0.5, "Y": 0.1, "X": 0.1},
            unit="micrometer",
        )
    assert not (tmp_path / "a.zarr.partial").exists()
    arr = zarr.open_group(out, mode="r")["0"]
    assert isinstance(arr, zarr.Array)
    assert arr.chunks == (8, 32, 32) and arr.shards is not None
    assert np.prod(arr.shards) * 2 <= 200_000 and arr.metadata.dimension_names == ("z", "y", "x")
    (img,) = open_images(str(out))
    assert (img.axes, img.name) == ("ZYX", "a.zarr")
    assert np.array_equal(img.data.compute(), x)
    names, level0 = _ome_zarr_py(out)
    assert names == ["z", "y", "x"] and np.array_equal(level0, x)
    model = ngff.Image.from_zarr(zarr.open_group(out, mode="r"))
    ms = model.attributes.ome.multiscales[0]
    assert [a.unit for a in ms.axes] == ["micrometer"] * 3 and ms.name == "a.tif"
    assert list(ms.datasets[0].coordinateTransformations[0].scale) == [0.5, 0.1, 0.1]


def test_zarr_source_axes_put_in_ngff_order(tmp_path: Path) -> None:
    x = _rand((20, 2, 70, 50), 1)  # Z C Y X on disk
    zarr.create_array(tmp_path / "src.zarr", data=x, chunks=(4, 1, 32, 32))
    out = convert_to_zarr(str(tmp_path / "src.zarr"), tmp_path / "out.zarr", axes="ZCYX")
    (img,) = open_images(str(out))
    assert img.axes == "CZYX"
    assert np.array_equal(img.data.compute(), x.transpose(1, 0, 2, 3))
    names, level0 = _ome_zarr_py(out)
    assert names == ["c", "z", "y", "x"] and np.array_equal(level0, x.transpose(1, 0, 2, 3))
    ngff.Image.from_zarr(zarr.open_group(out, mode="r"))


def test_czi_scenes_become_a_series_layout(tmp_path: Path) -> None:
    data = _rand((2, 2, 3, 30, 40), 2)  # S C Z Y X
    path = tmp_path / "s.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as wr:
        for s, c, z in np.ndindex(2, 2, 3):
            wr.write(
                data[s, c, z][..., None], location=(60 * s, 0), plane={"C": c, "Z": z}, scene=s
            )
    out = convert_to_zarr(str(path), tmp_path / "s.zarr", axes="SCZYX")
    before = open_images(str(path), axes="SCZYX")
    after = open_images(str(out))
    assert [im.axes for im in after] == ["CZYX", "CZYX"]
    for b, a, d in zip(before, after, data, strict=True):
        assert np.array_equal(a.data.compute(), b.data.compute())
        assert np.array_equal(a.data.compute(), d)
    for i in range(2):
        assert np.array_equal(_ome_zarr_py(out / str(i))[1], data[i])
        ngff.Image.from_zarr(zarr.open_group(out / str(i), mode="r"))
    series = zarr.open_group(out / "OME", mode="r").attrs["ome"]
    assert series == {"version": "0.5", "series": ["0", "1"]}


def test_training_data_from_converted_folders_identical(tmp_path: Path) -> None:
    write_tiff_pairs(tmp_path / "data", 3, (24, 80, 70), seed=4)
    for d in ("low", "GT"):
        convert_to_zarr(tmp_path / "data" / d, tmp_path / f"{d}.zarr", axes="ZYX")
    runs = []
    for src, tgt in (
        (tmp_path / "data" / "low", tmp_path / "data" / "GT"),
        (tmp_path / "low.zarr", tmp_path / "GT.zarr"),
    ):
        raw = caredask.RawData.from_sources(str(src), str(tgt), axes="ZYX")
        runs.append(caredask.generate_training_data(raw, (8, 32, 32), 12, seed=3)[:2])
    assert runs[0][0].shape == (36, 1, 8, 32, 32)
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


class _Biggest(Callback):  # type: ignore[misc]
    """Largest array any task of a computation returned."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes = 0

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
        if isinstance(result, np.ndarray):
            self.nbytes = max(self.nbytes, result.nbytes)


def test_streams_shard_by_shard(tmp_path: Path) -> None:
    x = _rand((64, 256, 256), 5)
    zarr.create_array(tmp_path / "big.zarr", data=x, chunks=(16, 64, 64))
    with dask.config.set(scheduler="threads"), _Biggest() as cb:
        out = convert_to_zarr(
            str(tmp_path / "big.zarr"), tmp_path / "o.zarr", axes="ZYX", shard_bytes=2**20
        )
    assert 0 < cb.nbytes <= 2**20 < x.nbytes
    assert np.array_equal(zarr.open_group(out, mode="r")["0"][:], x)


def test_existing_output_refused_partial_replaced(tmp_path: Path) -> None:
    x = _rand((10, 40, 40), 6)
    tifffile.imwrite(tmp_path / "a.tif", x)
    out = tmp_path / "a.zarr"
    (tmp_path / "a.zarr.partial").mkdir()  # left by an interrupted run
    convert_to_zarr(tmp_path / "a.tif", out, axes="ZYX")
    with pytest.raises(InputError, match=r"a\.zarr exists; pass overwrite=True"):
        convert_to_zarr(tmp_path / "a.tif", out, axes="ZYX")
    tifffile.imwrite(tmp_path / "a.tif", x + 1)
    convert_to_zarr(tmp_path / "a.tif", out, axes="ZYX", overwrite=True)
    assert np.array_equal(open_images(str(out))[0].data.compute(), x + 1)
    with pytest.raises(InputError, match="not a multiple of the inner chunks"):
        convert_to_zarr(
            tmp_path / "a.tif", tmp_path / "b.zarr", axes="ZYX", shard_shape=(10, 50, 50)
        )
    assert not (tmp_path / "b.zarr").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = _rand((12, 50, 60), 7)
    tifffile.imwrite(tmp_path / "a.tif", x)
    out = tmp_path / "a.zarr"
    argv = ["convert", str(tmp_path / "a.tif"), str(out), "--axes", "ZYX", "--patch-size"]
    assert main([*argv, "4", "16", "16", "--no-zarrs"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert zarr.open_group(out, mode="r")["0"].chunks == (4, 16, 16)
    assert np.array_equal(open_images(str(out))[0].data.compute(), x)
    assert main([*argv, "4", "16", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caredask: error: ") and "exists" in err and "--overwrite" in err
    assert main([*argv, "1", "2", "3", "4"]) == 2
    assert "at most 3 values" in capsys.readouterr().err
    assert (
        main([*argv, "16", "16", "--overwrite", "--scale", "0.2", "0.2", "--unit", "nanometer"])
        == 0
    )
    ms = zarr.open_group(out, mode="r").attrs["ome"]["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.2, 0.2]
    assert [a.get("unit") for a in ms["axes"]] == ["nanometer"] * 3
    assert zarr.open_group(out, mode="r")["0"].chunks == (12, 16, 16)
