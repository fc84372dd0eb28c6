"""Pairing of source and target images by name, and errors that name the files involved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import caredask as cc
from caredask.errors import InputError
from caredask.transforms.frames import accumulate_frames


def _write(folder: Path, names: list[str], value: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    for i, n in enumerate(names):
        tifffile.imwrite(folder / n, np.full((8, 8), value + i, np.uint16))


def _pairs(raw: cc.RawData) -> list[tuple[int, int]]:
    return [(int(x[0, 0].compute()), int(y[0, 0].compute())) for x, y, _, _ in raw.generator()]


def test_lists_pair_by_name_whatever_their_order(tmp_path: Path) -> None:
    _write(tmp_path / "low", ["a.tif", "b.tif"], 0)
    _write(tmp_path / "GT", ["a.tif", "b.tif"], 10)
    low, gt = tmp_path / "low", tmp_path / "GT"
    raw = cc.RawData.from_sources([low / "a.tif", low / "b.tif"], [gt / "b.tif", gt / "a.tif"])
    assert _pairs(raw) == [(0, 10), (1, 11)]
    by_pos = cc.RawData.from_sources(
        [low / "a.tif", low / "b.tif"], [gt / "b.tif", gt / "a.tif"], pair_by="position"
    )
    assert _pairs(by_pos) == [(0, 11), (1, 10)]


def test_folders_with_unmatched_names_refused_naming_them(tmp_path: Path) -> None:
    _write(tmp_path / "low", ["img_1.tif", "img_2.tif"])
    _write(tmp_path / "GT", ["img_1.tif", "img_3.tif"])
    with pytest.raises(
        InputError,
        match=r"paired by name and some have no partner: no target for .*low/img_2\.tif; "
        r"no source for .*GT/img_3\.tif; .*pair_by='position'",
    ):
        cc.RawData.from_sources(tmp_path / "low", tmp_path / "GT")
    raw = cc.RawData.from_sources(tmp_path / "low", tmp_path / "GT", pair_by="position")
    assert raw.size == 2


def test_single_files_and_arrays_pair_by_position(tmp_path: Path) -> None:
    _write(tmp_path, ["low.tif", "gt.tif"])
    assert cc.RawData.from_sources(tmp_path / "low.tif", tmp_path / "gt.tif").size == 1
    xs = [np.zeros((8, 8)), np.ones((8, 8))]
    assert cc.RawData.from_sources(xs, xs, axes="YX").size == 2
    with pytest.raises(InputError, match=r"2 source images but 1 target images .*no target for"):
        cc.RawData.from_sources(xs, xs[:1], axes="YX")


def test_zarr_store_pairs_by_position_lists_of_stores_by_name(tmp_path: Path) -> None:
    for side in ("low", "GT"):
        g = zarr.open_group(tmp_path / side / "s.zarr", mode="w")
        for k in ("0", "1"):
            g.create_array(k, data=np.zeros((8, 8), np.uint8), dimension_names=["y", "x"])
    one = cc.RawData.from_sources(tmp_path / "low" / "s.zarr", tmp_path / "GT" / "s.zarr")
    assert one.size == 2
    lists = ([tmp_path / "low" / "s.zarr"], [tmp_path / "GT" / "s.zarr"])
    assert cc.RawData.from_sources(*lists).size == 2
    (tmp_path / "GT" / "s.zarr").rename(tmp_path / "GT" / "t.zarr")
    with pytest.raises(InputError, match=r"no target for .*s\.zarr/0, .*s\.zarr/1; no source"):
        cc.RawData.from_sources([tmp_path / "low" / "s.zarr"], [tmp_path / "GT" / "t.zarr"])
    assert cc.RawData.from_sources(tmp_path / "low" / "s.zarr", tmp_path / "GT" / "t.zarr").size


def test_repeated_names_refused_when_pairing_by_name(tmp_path: Path) -> None:
    _write(tmp_path / "a", ["x.tif"])
    _write(tmp_path / "b", ["x.tif"])
    _write(tmp_path / "GT", ["x.tif"])
    with pytest.raises(InputError, match=r"source images repeat the names x\.tif"):
        cc.RawData.from_sources([tmp_path / "a", tmp_path / "b"], [tmp_path / "GT"] * 2)
    with pytest.raises(InputError, match=r"pair_by='sorted': use 'auto', 'name' or 'position'"):
        cc.RawData.from_sources(tmp_path / "a", tmp_path / "GT", pair_by="sorted")


def test_accumulate_frames_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "low").mkdir()
    (tmp_path / "GT").mkdir()
    for side in ("low", "GT"):
        tifffile.imwrite(
            tmp_path / side / "stack.tif", np.zeros((4, 8, 8), np.uint16), metadata={"axes": "TYX"}
        )
    raw = cc.RawData.from_sources(tmp_path / "low", tmp_path / "GT", axes="TYX")
    tf = accumulate_frames(2, 3, dtype="uint16")
    with pytest.raises(
        InputError, match=r"accumulate_frames, .*low/stack\.tif \(source\): the sum of 2 uint16"
    ):
        list(tf.generator(raw.generator()))
    tf = accumulate_frames(1, 3, dtype="uint16")
    with pytest.raises(InputError, match=r"accumulate_frames, .*GT/stack\.tif \(target\): the sum"):
        list(tf.generator(raw.generator()))
    arrays = cc.RawData.from_arrays([np.zeros((4, 8, 8), np.uint16)] * 2, [None] * 2, "TYX")
    with pytest.raises(InputError, match=r"accumulate_frames, image 0 \(source\)"):
        list(accumulate_frames(2, 3, dtype="uint16").generator(arrays.generator()))
