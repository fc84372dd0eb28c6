"""Rows of the README's refusals table not checked elsewhere: each message, by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import caredask as cc
from caredask.errors import AxesError, FormatError, InputError, SourceNotFoundError
from caredask.loaders import open_images
from caredask.masks.filters import no_background_patches
from caredask.transforms.frames import accumulate_frames


def test_loader_refusals(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "s.zarr", data=np.array(["a", "b"]), chunks=(1,))
    with pytest.raises(FormatError, match=r"s\.zarr: zarr array of dtype <U1 is not an image"):
        open_images(tmp_path / "s.zarr", axes="Y")
    (tmp_path / "x.h5").write_text("x")
    with pytest.raises(InputError, match=r"x\.h5'?: caredask cannot read this kind of source"):
        open_images(str(tmp_path / "x.h5"))
    with pytest.raises(AxesError, match=r"axis 'Y' occurs more than once in axes 'YYX'"):
        open_images(np.zeros((2, 8, 8)), axes="YYX")
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint16))
    (img,) = open_images(tmp_path / "a.tif")
    (tmp_path / "a.tif").unlink()
    with pytest.raises(SourceNotFoundError, match=r"a\.tif: the file was removed after it was"):
        img.data.compute()


def test_ome_level_that_does_not_exist(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "img.zarr", mode="w", zarr_format=3)
    axes = [{"name": a, "type": "space"} for a in "yx"]
    ds = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": ds}]}
    g.create_array("0", data=np.zeros((8, 8), np.uint8), dimension_names=["y", "x"])
    with pytest.raises(InputError, match=r"level=5 does not exist; this OME-Zarr image has 1"):
        open_images(tmp_path / "img.zarr", level=5)


def test_unreachable_remote_store() -> None:
    with pytest.raises(SourceNotFoundError, match=r"cannot read the zarr store .*reachable"):
        open_images("http://127.0.0.1:9/x.zarr", axes="YX")


def test_pair_refusals(tmp_path: Path) -> None:
    for name, dims in (("low.zarr", ["z", "y", "x"]), ("gt.zarr", ["c", "y", "x"])):
        zarr.create_array(tmp_path / name, data=np.zeros((1, 8, 8), np.uint8), dimension_names=dims)
    raw = cc.RawData.from_sources(tmp_path / "low.zarr", tmp_path / "gt.zarr")
    with pytest.raises(AxesError, match=r"low\.zarr: axes 'ZYX' differ from its target's 'CYX'"):
        list(raw.generator())
    raw = cc.RawData.from_arrays([np.ones((8, 8))], [np.ones((8, 6))], "YX")
    with pytest.raises(InputError, match=r"array\[0\]: source shape \(8, 8\) differs from target"):
        cc.create_patches(raw, (4, 4), 2, verbose=False, patch_filter=None)


def test_patch_option_refusals() -> None:
    x = np.ones((2, 8, 8), np.uint16)
    raw = cc.RawData.from_arrays([x], [x], "CYX")
    with pytest.raises(InputError, match=r"must contain all channels: patch_size\[0\]=1 but"):
        cc.create_patches(raw, (1, 4, 4), 2, verbose=False)
    with pytest.raises(InputError, match=r"n_patches_per_image=0 must be a positive integer"):
        cc.create_patches(raw, (2, 4, 4), 0, verbose=False)
    with pytest.raises(InputError, match=r"threshold=2 must be in \[0, 1\]"):
        no_background_patches(2)
    stacks = cc.RawData.from_arrays([np.zeros((40, 8, 8), np.uint16)], [None], "TYX")
    with pytest.raises(InputError, match=r"cannot sum the first 50 frames of a stack of 40"):
        list(accumulate_frames(50, 3).generator(stacks.generator()))
