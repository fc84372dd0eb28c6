"""Every code block of README.md runs as pasted, on a small generated dataset.

Python blocks run in a fresh interpreter, bash blocks in ``bash -e`` with the installed
``caredask`` on ``PATH``, each in a fresh folder holding the data the README's examples name
(``data/{low,GT}`` 3D TIFF pairs, ``pairs/{low,GT}`` 2D pairs, ``raw/`` frame stacks, and
``caredask-demo/data`` as ``caredask demo`` writes it), linked into each block's folder.  A block
is skipped only when the line before it says ``<!-- readme-test: skip: REASON -->``; the
skipped blocks are listed in :data:`SKIPPED` so that none is skipped silently, and skipped
Python blocks must still compile.  The README's cluster recipe is run against a real local
``distributed`` scheduler: its address replaces :data:`README_ADDRESS` and its scheduler file
is ``scheduler.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from caredask.dataset.synthetic import synthetic_pair, write_tiff_pairs

README = Path(__file__).resolve().parents[1] / "README.md"
README_ADDRESS = "tcp://127.0.0.1:8786"
SKIPPED = {
    "installs into a new virtual environment; .ci/run runs exactly these",
    "needs a SLURM cluster and dask-jobqueue",
    "the scale benchmarks (GiB-sized data, far longer than a test)",
}
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
_SKIP = re.compile(r"<!-- readme-test: skip: (.+?) -->\s*$")


def blocks() -> list[tuple[str, str, str | None, int]]:
    """(language, code, skip reason, line) of every fenced block of the README."""
    text = README.read_text()
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        line = text[: m.start()].count("\n") + 1
        out.append((m.group(1), m.group(2), skip.group(1) if skip else None, line))
    return out


BLOCKS = [b for b in blocks() if b[0] in ("python", "bash")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("readme-data")
    write_tiff_pairs(base / "data", 1, (24, 96, 96), seed=0, dense=True)
    write_tiff_pairs(base / "caredask-demo" / "data", 4, (32, 256, 256), seed=0)  # as the demo
    write_tiff_pairs(base / "pairs", 5, (96, 96), seed=1, dense=True)
    (base / "raw").mkdir()
    for i in range(2):
        clean = synthetic_pair((64, 64), seed=i, dense=True)[1]
        frames = np.stack([clean] * 8).astype(np.uint16)
        tifffile.imwrite(base / "raw" / f"t{i}.tif", frames, imagej=True, metadata={"axes": "TYX"})
    return base


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=":0",
    ) as c:
        yield c


def test_only_the_listed_blocks_are_skipped() -> None:
    assert {b[2] for b in BLOCKS if b[2]} == SKIPPED
    assert len([b for b in BLOCKS if b[2]]) == len(SKIPPED)
    for lang, code, skip, line in BLOCKS:
        if skip and lang == "python":
            compile(code, f"README.md:{line}", "exec")


@pytest.mark.parametrize(
    ("lang", "code", "line"),
    [pytest.param(b[0], b[1], b[3], id=f"line{b[3]}") for b in BLOCKS if not b[2]],
)
def test_readme_block_runs(lang, code, line, dataset, cluster, tmp_path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    for d in dataset.iterdir():
        (work / d.name).symlink_to(d, target_is_directory=True)
    (work / "scheduler.json").write_text(json.dumps({"address": cluster.scheduler_address}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [
            "bash",
            "-e",
            "-o",
            "pipefail",
            "-c",
            code.replace(README_ADDRESS, cluster.scheduler_address),
        ]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README.md:{line} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr


def test_sorted_compat_path_equals_native_api(dataset, tmp_path) -> None:
    """The README's claim: from_folder(sort=True) + np.random.seed(s) == the native API."""
    import caredask
    from caredask.csbdeep import RawData, create_patches

    write_tiff_pairs(tmp_path, 3, (8, 40, 40), seed=5)
    for i in (2, 10):  # natural order differs from name order and directory order
        for d in ("low", "GT"):
            shutil.copy(tmp_path / d / "img_000.tif", tmp_path / d / f"img_{i}.tif")
    np.random.seed(4)
    X, Y, _ = create_patches(
        RawData.from_folder(tmp_path, ["low"], "GT", axes="ZYX", sort=True),
        (4, 16, 16),
        3,
        verbose=False,
    )
    raw = caredask.RawData.from_sources(tmp_path / "low", tmp_path / "GT", axes="ZYX")
    X2, Y2, _ = caredask.generate_training_data(raw, (4, 16, 16), 3, seed=4)
    assert np.array_equal(X, X2) and np.array_equal(Y, Y2)
