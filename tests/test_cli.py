"""The ``caredask`` command line, as a user runs it."""

from __future__ import annotations

import numpy as np
import pytest

from caredask.cli.main import main
from caredask.dataset.synthetic import write_tiff_pairs
from tests.oracles import oracle

cd = oracle("csbdeep.data", "csbdeep")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    write_tiff_pairs(base, 2, (10, 48, 40), seed=3)
    return base


def test_patches_npz_equals_csbdeep(data, tmp_path, capsys):
    out = tmp_path / "train.npz"
    args = [
        "patches",
        str(data),
        "--axes",
        "ZYX",
        "--patch-size",
        "4",
        "16",
        "16",
        "-k",
        "5",
        "--seed",
        "7",
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    np.random.seed(7)
    X, Y, axes = cd.create_patches(
        cd.RawData.from_folder(data, ["low"], "GT", axes="ZYX"), (4, 16, 16), 5, verbose=False
    )
    f = np.load(out)
    assert str(f["axes"]) == axes and np.array_equal(f["X"], X) and np.array_equal(f["Y"], Y)
    assert main(args) == 2  # exists: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_patches_zarr_options(data, tmp_path):
    out = tmp_path / "train.zarr"
    assert (
        main(
            [
                "patches",
                str(data),
                "--axes",
                "ZYX",
                "--patch-size",
                "4",
                "16",
                "16",
                "-k",
                "3",
                "--no-filter",
                "--percentiles",
                "2",
                "99.8",
                "--relu-last",
                "--no-shuffle",
                "--scheduler",
                "synchronous",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    np.random.seed(0)
    X, _, _ = cd.create_patches(
        cd.RawData.from_folder(data, ["low"], "GT", axes="ZYX"),
        (4, 16, 16),
        3,
        patch_filter=None,
        shuffle=False,
        normalization=cd.norm_percentiles((2, 99.8), relu_last=True),
        verbose=False,
    )
    import zarr

    assert np.array_equal(zarr.open_group(out, mode="r")["X"][...], X)


def test_inspect(data, capsys):
    assert main(["inspect", str(data / "low")]) == 0
    out = capsys.readouterr().out
    assert "img_000.tif" in out and "axes: ZYX" in out and "uint16" in out and "chunks" in out


def test_inspect_a_training_store(data, tmp_path, capsys):
    out = tmp_path / "t.zarr"
    args = ["patches", str(data), "--axes", "ZYX", "--patch-size", "4", "16", "16", "-k", "3"]
    assert main([*args, "-o", str(out), "--seed", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--stats"]) == 0
    text = capsys.readouterr().out
    assert "(caredask training data, 6 patches)" in text
    assert "X: (6, 1, 4, 16, 16) float32" in text and "axes: SCZYX" in text
    assert "from 2 images (image axes ZYX), patch size (4, 16, 16), 3 per image, seed 1" in text
    assert "stats X: min" in text and "stats Y: min" in text


def test_errors(tmp_path, capsys):
    assert (
        main(
            [
                "patches",
                str(tmp_path),
                "--patch-size",
                "8",
                "8",
                "-k",
                "2",
                "-o",
                str(tmp_path / "x.h5"),
            ]
        )
        == 2
    )
    assert ".npz or .zarr" in capsys.readouterr().err
    assert (
        main(
            [
                "patches",
                str(tmp_path / "nope"),
                "--patch-size",
                "8",
                "8",
                "-k",
                "2",
                "-o",
                str(tmp_path / "x.npz"),
            ]
        )
        == 2
    )
    assert "not a folder" in capsys.readouterr().err


def test_demo(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "X (128, 1, 16, 64, 64)" in out
    assert (tmp_path / "demo" / "training_data.npz").exists()


def check_sources(tmp_path, ext, extra, patch, xs, ys, axes):
    """`caredask patches --source low.EXT --target gt.EXT` equals csbdeep on the arrays."""
    out = tmp_path / f"{ext}.npz"
    args = [
        "patches",
        "--source",
        str(tmp_path / f"low.{ext}"),
        "--target",
        str(tmp_path / f"gt.{ext}"),
        *extra,
        "--patch-size",
        *map(str, patch),
        "-k",
        "4",
        "--seed",
        "3",
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    np.random.seed(3)
    X, Y, ref_axes = cd.create_patches(
        cd.RawData.from_arrays(xs, ys, axes), patch, 4, verbose=False
    )
    f = np.load(out)
    assert np.array_equal(f["X"], X) and np.array_equal(f["Y"], Y)
    assert str(f["axes"]) == ref_axes


def test_patches_from_zarr_and_czi_sources(tmp_path, capsys):
    """`caredask patches --source/--target` on Zarr stores and CZI files equals csbdeep."""
    import zarr

    rs = np.random.RandomState(0)
    xs = [rs.gamma(1, 300, (6, 40, 36)).astype(np.uint16) for _ in range(2)]
    ys = [(x // 2 + 7).astype(np.uint16) for x in xs]
    for name, arrays in (("low.zarr", xs), ("gt.zarr", ys)):
        g = zarr.open_group(tmp_path / name, mode="w", zarr_format=3)
        for i, a in enumerate(arrays):
            g.create_array(str(i), data=a, chunks=(3, 16, 16), dimension_names=list("zyx"))
    check_sources(tmp_path, "zarr", [], (2, 8, 8), xs, ys, "ZYX")

    pyczi = oracle("pylibCZIrw.czi", "pylibCZIrw")
    for name, arrays in (("low.czi", xs), ("gt.czi", ys)):
        with pyczi.create_czi(str(tmp_path / name), exist_ok=True) as w:
            for z in range(6):
                w.write(arrays[0][z][..., None], plane={"C": 0, "Z": z, "T": 0}, scene=0)
    check_sources(
        tmp_path, "czi", ["--axes", "SCZYX"], (1, 2, 8, 8), [xs[0][None]], [ys[0][None]], "CZYX"
    )
    assert main(["inspect", str(tmp_path / "low.czi"), str(tmp_path / "low.zarr")]) == 0
    shown = capsys.readouterr().out
    assert "low.czi@0" in shown and "axes: CZYX" in shown and "axes: ZYX" in shown


def test_patches_argument_errors(tmp_path, capsys):
    assert (
        main(["patches", "--patch-size", "4", "4", "-k", "2", "-o", str(tmp_path / "a.npz")]) == 2
    )
    assert "BASEPATH" in capsys.readouterr().err
