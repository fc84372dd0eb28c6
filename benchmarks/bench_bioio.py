#!/usr/bin/env python
"""A DeltaVision stack through bioio against the same pixels as TIFF and as Zarr, in one run.

Writes one uint16 Z stack (default 128 x 2048 x 2048 = 1 GiB) as ``.dv`` (``mrc``), as an
uncompressed TIFF (tifffile) and as an uncompressed Zarr v3 array (chunks 8 x 512 x 512), then
for each format measures, with dask's threaded scheduler and a warm page cache:

* ``open``: ``caredask.open_images`` (metadata only);
* ``pass``: one full read (``data.max()``), and the number of chunks and graph tasks it has;
* ``extract``: ``generate_training_data`` of 128 patches of 16 x 64 x 64 from the stack paired
  with itself (no background filter, csbdeep's default normalisation).

For DeltaVision it also runs the pass on bioio's own ``dask_data`` (one chunk per plane), the
"before rechunking" row.  Ratios are printed against TIFF and Zarr.  The extracted patches are
checked to be identical for all three formats.

Example::

    python benchmarks/bench_bioio.py                 # 1 GiB, about a minute
    python benchmarks/bench_bioio.py --planes 16     # 128 MiB smoke test
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MiB = 2**20


def _stack(planes: int, size: int, seed: int) -> np.ndarray:
    """Smooth blobs plus noise, plane by plane (uint16)."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((planes, size, size), np.uint16)
    for z in range(planes):
        base = 800 + 600 * np.sin(6.3 * (xx + z / planes)) * np.cos(4.1 * yy)
        out[z] = np.clip(base + rs.normal(0, 40, (size, size)), 0, 65535).astype(np.uint16)
    return out


def write_all(a: np.ndarray, where: Path) -> dict[str, Path]:
    import mrc
    import tifffile
    import zarr

    paths = {"dv": where / "stack.dv", "tiff": where / "stack.tif", "zarr": where / "stack.zarr"}
    mrc.imsave(str(paths["dv"]), a, metadata={"dx": 0.1, "dy": 0.1, "dz": 0.3})
    tifffile.imwrite(paths["tiff"], a, metadata={"axes": "ZYX"})
    z = zarr.create_array(
        paths["zarr"], shape=a.shape, dtype=a.dtype, chunks=(8, 512, 512), compressors=None
    )
    z[:] = a
    return paths


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(path: Path, repeat: int) -> dict[str, Any]:
    from caredask import RawData, generate_training_data, open_images

    t_open, images = timed(lambda: open_images(path, "ZYX"), repeat)
    data = images[0].data
    t_pass, mx = timed(lambda: int(data.max().compute()), repeat)

    def extract() -> np.ndarray:
        raw = RawData.from_sources(path, path, "ZYX")
        X, _, _ = generate_training_data(raw, (16, 64, 64), 128, seed=0, patch_filter=None)
        return np.asarray(X)

    t_extract, X = timed(extract, repeat)
    return {
        "open": t_open,
        "pass": t_pass,
        "extract": t_extract,
        "chunks": data.npartitions,
        "tasks": len(data.max().__dask_graph__()),
        "chunk": data.chunksize,
        "max": mx,
        "X": X,
    }


def bioio_native(path: Path, repeat: int) -> dict[str, Any]:
    """The pass on bioio's own dask data (one chunk per plane): before rechunking."""
    from bioio import BioImage

    data = BioImage(path).dask_data
    t_pass, mx = timed(lambda: int(data.max().compute()), repeat)
    return {
        "pass": t_pass,
        "chunks": data.npartitions,
        "tasks": len(data.max().__dask_graph__()),
        "chunk": data.chunksize,
        "max": mx,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planes", type=int, default=128)
    ap.add_argument("--size", type=int, default=2048, help="Y and X size")
    ap.add_argument("--repeat", type=int, default=2, help="best of N timings")
    ap.add_argument("--dir", default=None, help="where to write the data (default: a temp dir)")
    args = ap.parse_args()
    where = Path(args.dir or tempfile.mkdtemp(prefix="bench-bioio-"))
    where.mkdir(parents=True, exist_ok=True)
    try:
        a = _stack(args.planes, args.size, 0)
        print(f"stack {a.shape} uint16, {a.nbytes / MiB:.0f} MiB, in {where}")
        paths = write_all(a, where)
        del a
        res = {k: measure(p, args.repeat) for k, p in paths.items()}
        before = bioio_native(paths["dv"], args.repeat)
    finally:
        if args.dir is None:
            shutil.rmtree(where, ignore_errors=True)
    same = all(np.array_equal(res["dv"]["X"], res[k]["X"]) for k in ("tiff", "zarr"))
    assert same and len({r["max"] for r in (*res.values(), before)}) == 1
    print(f"patches identical for dv, tiff, zarr: {same}")
    head = f"{'open s':>9}{'pass s':>9}{'extract s':>11}{'chunks':>8}{'tasks':>7}"
    print(f"{'format':<22}{head}  chunk")
    for k, r in res.items():
        print(
            f"{k:<22}{r['open']:9.3f}{r['pass']:9.3f}{r['extract']:11.3f}{r['chunks']:8d}"
            f"{r['tasks']:7d}  {r['chunk']}"
        )
    print(
        f"{'dv, bioio dask_data':<22}{'':>9}{before['pass']:9.3f}{'':>11}{before['chunks']:8d}"
        f"{before['tasks']:7d}  {before['chunk']}"
    )
    dv = res["dv"]
    for k in ("tiff", "zarr"):
        ratios = "  ".join(f"{m} {dv[m] / res[k][m]:.2f}x" for m in ("open", "pass", "extract"))
        print(f"dv / {k}: {ratios}")
    print(
        f"rechunking: tasks per pass {before['tasks']} -> {dv['tasks']}, "
        f"pass time {before['pass'] / dv['pass']:.2f}x faster than bioio's dask_data"
    )


if __name__ == "__main__":
    main()
