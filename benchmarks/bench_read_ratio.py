"""End-to-end job time against one raw read of the pair, and how much of the target is re-read.

For a sparse (synthetic, ~33 % eligible), a noisy (the sparse one with camera noise, so it
compresses like microscopy data), a dense (~98 %) and a localised (foreground in one corner of
the field of view) Zarr dataset, plain and sharded, this script times in one run:

* ``raw``: reading and decoding source and target once (``da.from_zarr(...).sum()`` in dask
  chunks of the store's read unit, as caredask reads, threads);
* ``job``: ``caredask.generate_training_data`` with csbdeep's defaults and a ``.zarr`` output
  (``--output memory``: the patches returned in memory, no output to compress and write),
  with the default memory budget (2 GiB: these 512 MiB batches are read per pass) and with
  ``memory_budget="4GiB"`` (``read once``: a batch within 1/8 of the budget is decoded once);

and prints ``job / raw`` and the fraction of the target the mask pass re-read from the store
(recorded per image).  With ``zarrs`` installed (``pip install caredask[fast]``) both are
repeated with its codec pipeline.  Usage::

    python benchmarks/bench_read_ratio.py                 # 4 pairs of 64x1024x1024 uint16
    python benchmarks/bench_read_ratio.py --images 1 --shape 32 512 512   # quick
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

import caredask
from caredask.csbdeep import RawData
from caredask.dataset.synthetic import synthetic_pair
from caredask.loaders.codecs import DEFAULT_PIPELINE, ZARRS_PIPELINE, use_zarrs

PATCH, K = (16, 64, 64), 128


def localised(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense foreground in one eighth of the volume, flat background elsewhere."""
    x, y = synthetic_pair(shape, seed=seed, dense=True)
    z, h, w = shape
    keep = np.zeros(shape, bool)
    keep[: z // 2, : h // 2, : w // 2] = True
    return np.where(keep, x, 150).astype(np.uint16), np.where(keep, y, 100).astype(np.uint16)


def noisy(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The sparse pair with a camera's noise: Poisson source, read noise on the target.

    The smooth synthetic images compress about 270x; with shot noise a zstd chunk compresses
    about as little as microscopy data does (2-4x), so reading and decoding cost what they cost
    on real acquisitions.
    """
    x, y = synthetic_pair(shape, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.poisson(x).clip(0, 65535).astype(np.uint16)
    y = (y + rng.normal(0, 3, shape)).clip(0, 65535).astype(np.uint16)
    return x, y


def write(base: Path, kind: str, layout: str, n: int, shape: tuple[int, ...]) -> list[Path]:
    out = base / f"{kind}-{layout}"
    if (out / "done").exists():
        return sorted(out.glob("*.zarr"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    opts: dict[str, Any] = {"chunks": (16, 64, 64), "shards": (64, 256, 256)}
    if layout == "plain":
        opts = {"chunks": (64, 256, 256)}
    for i in range(n):
        if kind == "localised":
            x, y = localised(shape, i)
        elif kind == "noisy":
            x, y = noisy(shape, i)
        else:
            x, y = synthetic_pair(shape, seed=i, dense=kind == "dense")
        for role, a in (("x", x), ("y", y)):
            arr = zarr.create_array(
                out / f"{role}{i:03d}.zarr", shape=a.shape, dtype=a.dtype, **opts
            )
            arr[...] = a
    (out / "done").write_text("ok")
    return sorted(out.glob("*.zarr"))


def _by_read_unit(path: Path) -> da.Array:
    """The array in dask chunks of its read unit (the shard if sharded), as caredask reads."""
    arr = zarr.open_array(str(path), mode="r")
    return da.from_zarr(arr, chunks=arr.shards or arr.chunks)


def raw_read(paths: list[Path]) -> float:
    t = time.perf_counter()
    dask.compute(*[_by_read_unit(p).sum() for p in paths], scheduler="threads")
    return time.perf_counter() - t


def job(paths: list[Path], budget: str | None = None, output: str = "zarr") -> tuple[float, float]:
    xs = [str(p) for p in paths if p.name.startswith("x")]
    ys = [str(p) for p in paths if p.name.startswith("y")]
    raw = RawData.from_sources(xs, ys, axes="ZYX", pair_by="position")
    out = Path(paths[0]).parent.parent / "job-out.zarr"
    save = out if output == "zarr" else None
    t = time.perf_counter()
    caredask.generate_training_data(
        raw, PATCH, K, seed=0, save_file=save, overwrite=True, memory_budget=budget
    )
    dt = time.perf_counter() - t
    if save is None:
        return dt, float("nan")
    images = zarr.open_group(out).attrs["caredask"]["images"]
    reread = float(np.mean([im["mask_reread"] for im in images]))
    shutil.rmtree(out)
    return dt, reread


@contextlib.contextmanager
def codec(name: str):
    """The raw read and caredask (reading and writing) on one codec pipeline."""
    path = ZARRS_PIPELINE if name == "zarrs" else DEFAULT_PIPELINE
    with use_zarrs(name == "zarrs"), zarr.config.set({"codec_pipeline.path": path}):
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 1024, 1024))
    ap.add_argument("--data-dir", default="benchmarks/data/read-ratio")
    ap.add_argument("--kinds", default="sparse,noisy,dense,localised")
    ap.add_argument(
        "--output", choices=("zarr", "memory"), default="zarr",
        help="write a .zarr store (default) or return the patches in memory",
    )  # fmt: skip
    args = ap.parse_args()
    base = Path(args.data_dir) / "x".join(map(str, args.shape)) / str(args.images)
    codecs = ["default"]
    try:
        import zarrs  # noqa: F401

        codecs.append("zarrs")
    except ImportError:
        print("(zarrs not installed: default codec pipeline only)")
    gib = 2 * args.images * np.prod(args.shape) * 2 / 2**30
    print(f"{args.images} pairs of {tuple(args.shape)} uint16 ({gib:.2f} GiB source+target)")
    print(
        f"{'data':<10} {'layout':<8} {'codec':<8} {'budget':<7} {'raw s':>7} {'job s':>7} "
        f"{'job/raw':>8} {'target re-read':>15}"
    )
    for kind in args.kinds.split(","):
        for layout in ("plain", "sharded"):
            paths = write(base, kind, layout, args.images, tuple(args.shape))
            for c in codecs:
                for budget in (None, "4GiB"):
                    with codec(c):
                        raw_read(paths)  # warm the page cache
                        r = raw_read(paths)
                        j, reread = job(paths, budget, args.output)
                    print(
                        f"{kind:<10} {layout:<8} {c:<8} {budget or '2GiB':<7} {r:7.2f} {j:7.2f} "
                        f"{j / r:8.2f} {reread:15.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
