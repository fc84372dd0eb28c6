"""Every user mistake or data problem through the command line: one line ``caredask: error:``,
exit status 2, no traceback, and no output that looks complete left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from caredask.dataset.synthetic import write_tiff_pairs


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caredask.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    write_tiff_pairs(d / "pairs", 2, (8, 32, 32), seed=0)
    for side, names in (("low", ["img_1.tif", "img_2.tif"]), ("GT", ["img_1.tif", "img_3.tif"])):
        (d / "odd" / side).mkdir(parents=True)
        for n in names:
            tifffile.imwrite(d / "odd" / side / n, np.ones((16, 16), np.uint16))
    img = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    for name in ("low.zarr", "gt.zarr"):
        zarr.create_array(d / name, data=img, chunks=(16, 16), dimension_names=["y", "x"])
    (d / "low.zarr" / "c" / "1" / "0").write_bytes(b"garbage!" * 4)
    tifffile.imwrite(d / "small.tif", np.ones((8, 8), np.uint16))
    (d / "exists.npz").write_bytes(b"keep me")
    g = zarr.open_group(d / "ome.zarr", mode="w", zarr_format=3)
    axes = [{"name": a, "type": "space"} for a in "zyx"]
    ds = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": ds}]}
    g.create_array("0", data=np.zeros((2, 8, 8), np.uint8), dimension_names=["c", "y", "x"])
    whole = (d / "small.tif").read_bytes()
    (d / "cut.tif").write_bytes(whole[: len(whole) // 2])
    (d / "afile").write_text("x")
    return d


PATCH = ["--patch-size", "4", "8", "8", "-k", "2", "-q"]
CASES = {
    "output exists": (
        ["patches", "pairs", "--axes", "ZYX", *PATCH, "-o", "exists.npz"],
        r"exists\.npz exists; pass --overwrite to replace it",
    ),
    "parent is a file": (
        ["patches", "pairs", "--axes", "ZYX", *PATCH, "-o", "afile/out.npz"],
        r"afile is a file, not a folder",
    ),
    "bad output suffix": (
        ["patches", "pairs", "--axes", "ZYX", *PATCH, "-o", "out.tif"],
        r"--output out\.tif: use a file name ending in \.npz or \.zarr",
    ),
    "corrupt zarr chunk": (
        "patches --source low.zarr --target gt.zarr --no-filter --patch-size 8 8 -k 4 -q "
        "-o z.npz".split(),
        r"low\.zarr: chunk 'c/1/0' \(.*low\.zarr/c/1/0\) cannot be decoded",
    ),
    "unmatched names": (
        ["patches", "--source", "odd/low", "--target", "odd/GT", *PATCH, "-o", "o.npz"],
        r"no target for .*low/img_2\.tif; no source for .*GT/img_3\.tif; .*--pair-by position",
    ),
    "files without partner": (
        "patches --source small.tif odd/low/img_1.tif --target small.tif --pair-by position "
        "--patch-size 4 4 -k 2 -q -o o.npz".split(),
        r"2 source images but 1 target images .*no target for .*img_1\.tif",
    ),
    "missing source": (
        ["patches", "--source", "nope.tif", "--target", "small.tif", *PATCH, "-o", "o.npz"],
        r"nope\.tif: no such TIFF file",
    ),
    "patch larger than image": (
        "patches --source small.tif --target small.tif --no-filter --patch-size 16 4 -k 1 -q "
        "-o o.npz".split(),
        r"small\.tif: patch_size \(16, 4\) .*along axis Y \(16 > 8\)",
    ),
    "wrong axes": (
        ["patches", "pairs", "--axes", "QYX", *PATCH, "-o", "o.npz"],
        r"invalid axis 'Q'",
    ),
    "unknown option": (
        ["patches", "pairs", "--patchsize", "4"],
        r"caredask: error: unrecognized arguments: --patchsize 4 \(see caredask --help\)",
    ),
    "inspect missing": (["inspect", "nowhere.zarr"], r"nowhere\.zarr: no zarr store"),
    "OME axes contradict dimension_names": (
        ["inspect", "ome.zarr"],
        r"ome\.zarr/0: the OME multiscales axes say 'ZYX' but the array's dimension_names "
        r"say 'CYX'",
    ),
    "truncated TIFF": (
        "patches --source cut.tif --target small.tif --patch-size 4 4 -k 1 -q -o o.npz".split(),
        r"cut\.tif: not a readable TIFF file \(pixel data end at byte",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_exit_2_no_traceback_no_output(data: Path, case: str) -> None:
    args, pattern = CASES[case]
    before = sorted(p.name for p in data.iterdir())
    r = run(*args, cwd=data)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("caredask: error: "), r.stderr
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert sorted(p.name for p in data.iterdir()) == before  # nothing written, nothing left
    assert (data / "exists.npz").read_bytes() == b"keep me"


BIG_JOB = "patches big --axes ZYX --patch-size 16 64 64 -k 400 --scheduler synchronous -o"


@pytest.mark.parametrize("out", ["out.npz", "out.zarr"])
def test_ctrl_c_one_line_saying_what_was_removed(
    tmp_path: Path, out: str, sigint_deliverable: None
) -> None:
    write_tiff_pairs(tmp_path / "big", 6, (32, 192, 192), seed=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "caredask.cli.main", *BIG_JOB.split(), out],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert "patches of size" in proc.stdout.readline()  # the job is planned and running
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert last.startswith(f"caredask: interrupted: {out} not written; "), err
    left = sorted(os.listdir(tmp_path))
    if last.endswith("; partial files removed"):  # nothing that looks like an output
        assert left == ["big"]
    else:  # a .zarr run with finished images is kept to resume, and says so
        assert out == "out.zarr" and left == ["big", "out.zarr.partial"]
        assert "the interrupted store out.zarr.partial is kept: run the same command" in last
