"""Non-finite values and images without foreground: refused by name, or skipped on request."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

import caredask
import caredask.csbdeep as cc
from caredask.errors import EmptyRegionError, InputError, NonFiniteError

from .conftest import blob_pair

PATCH, K = (8, 8), 5


def folder(tmp_path, pairs):
    for sub in ("low", "GT"):
        (tmp_path / sub).mkdir(parents=True)
    for i, (x, y) in enumerate(pairs):
        tifffile.imwrite(tmp_path / "low" / f"img_{i}.tif", x)
        tifffile.imwrite(tmp_path / "GT" / f"img_{i}.tif", y)
    return cc.RawData.from_folder(tmp_path, ["low"], "GT", axes="YX", sort=True)


def floats(seed):
    x, y = blob_pair((40, 44), seed)
    return x.astype(np.float32), y.astype(np.float32)


def test_nan_in_a_source_is_refused_naming_the_file_and_count(tmp_path):
    x, y = floats(1)
    x[3, 4:7] = np.nan
    raw = folder(tmp_path, [floats(0), (x, y)])
    with pytest.raises(
        NonFiniteError, match=r"low/img_1\.tif: the source image holds 3 non-finite"
    ):
        caredask.generate_training_data(raw, PATCH, K, seed=0)


def test_inf_in_a_target_is_refused_naming_the_target(tmp_path):
    x, y = floats(1)
    y[0, 0] = np.inf
    raw = folder(tmp_path, [(x, y)])
    with pytest.raises(NonFiniteError, match=r"GT/img_0\.tif: the target image holds 1 non-finite"):
        caredask.generate_training_data(raw, PATCH, K, seed=0)


def test_keep_gives_csbdeeps_nan_patches_and_the_drop_in_warns(tmp_path):
    import csbdeep.data as cd

    x, y = floats(2)
    x[10:30, 10:30] = np.nan
    np.random.seed(3)
    ref = cd.create_patches(cd.RawData.from_arrays([x], [y], "YX"), PATCH, K, verbose=False)
    got = caredask.generate_training_data(
        cc.RawData.from_arrays([x], [y], "YX"), PATCH, K, seed=3, nonfinite="keep"
    )
    assert np.array_equal(ref[0], got[0], equal_nan=True) and np.array_equal(ref[1], got[1])
    np.random.seed(3)
    with pytest.warns(UserWarning, match="array\\[0\\]: the source image holds 400 non-finite"):
        drop_in = cc.create_patches(cc.RawData.from_arrays([x], [y], "YX"), PATCH, K, verbose=False)
    assert np.array_equal(ref[0], drop_in[0], equal_nan=True)


def test_nan_target_with_keep_says_why_there_is_no_region(tmp_path):
    x, y = floats(1)
    y[5, 5] = np.nan
    raw = folder(tmp_path, [(x, y)])
    with pytest.raises(EmptyRegionError, match=r"its target .*GT/img_0\.tif holds 1 non-finite"):
        caredask.generate_training_data(raw, PATCH, K, seed=0, nonfinite="keep")


def test_bad_policies_are_refused():
    raw = cc.RawData.from_arrays([np.ones((9, 9))], [np.ones((9, 9))], "YX")
    with pytest.raises(InputError, match="nonfinite='no' is not one of 'raise', 'warn', 'keep'"):
        caredask.generate_training_data(raw, PATCH, K, seed=0, nonfinite="no")
    with pytest.raises(InputError, match="on_empty='drop' is not one of 'raise', 'skip'"):
        caredask.generate_training_data(raw, PATCH, K, seed=0, on_empty="drop")


def test_skip_empty_equals_the_call_without_the_empty_images(tmp_path):
    a, c = blob_pair((40, 44), 1), blob_pair((40, 44), 2)
    empty = (np.zeros((40, 44), np.uint16), np.zeros((40, 44), np.uint16))
    raw = folder(tmp_path / "all", [a, empty, c])
    ref = caredask.generate_training_data(folder(tmp_path / "some", [a, c]), PATCH, K, seed=4)
    with pytest.raises(EmptyRegionError, match=r"img_1\.tif: 'patch_filter' didn't return"):
        caredask.generate_training_data(raw, PATCH, K, seed=4)
    with pytest.warns(UserWarning, match=r"1 image\(s\) without foreground skipped: .*img_1\.tif"):
        got = caredask.generate_training_data(
            raw, PATCH, K, seed=4, on_empty="skip", save_file=tmp_path / "o.zarr"
        )
    assert np.array_equal(ref[0], got[0].compute()) and np.array_equal(ref[1], got[1].compute())
    record = zarr.open_group(tmp_path / "o.zarr").attrs["caredask"]
    assert [s.endswith("img_1.tif") for s in record["skipped"]] == [True]
    assert len(record["images"]) == 2


def test_skip_when_every_image_is_empty(tmp_path):
    empty = (np.zeros((40, 44), np.uint16), np.zeros((40, 44), np.uint16))
    raw = folder(tmp_path, [empty, empty])
    with pytest.raises(EmptyRegionError, match=r"no image has a region .*2 image\(s\)"):
        caredask.generate_training_data(raw, PATCH, K, seed=0, on_empty="skip")


def test_cli_skip_empty_in_patches_and_dataset(tmp_path, capsys):
    import json
    import warnings

    from caredask.cli.main import main

    a, c = blob_pair((40, 44), 1), blob_pair((40, 44), 2)
    empty = (np.zeros((40, 44), np.uint16), np.zeros((40, 44), np.uint16))
    folder(tmp_path / "d", [a, empty, c])
    args = ["--patch-size", "8", "8", "-k", "4", "--quiet"]
    base = str(tmp_path / "d")
    assert main(["patches", base, "--axes", "YX", "-o", str(tmp_path / "o.npz"), *args]) == 2
    assert "img_1.tif: 'patch_filter' didn't return" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            ["patches", base, "--axes", "YX", "-o", str(tmp_path / "o.npz"), "--skip-empty", *args]
        )
    assert code == 0
    assert "skipped (no foreground): " in capsys.readouterr().err
    assert np.load(tmp_path / "o.npz")["X"].shape[0] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            [
                "dataset",
                "--source",
                f"{base}/low",
                "--target",
                f"{base}/GT",
                "--axes",
                "YX",
                "-o",
                str(tmp_path / "ds"),
                "--test-fraction",
                "0",
                "--skip-empty",
                *args,
            ]
        )
    assert code == 0
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [s.endswith("img_1.tif") for s in manifest["patches"]["skipped"]] == [True]
