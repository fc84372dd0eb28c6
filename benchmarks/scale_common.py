"""Shared pieces of the scale benchmarks (``bench_scaling``, ``bench_memory``, ``bench_resume``).

Data: uint16 CARE-like pairs of ``128x2048x2048`` (``caredask.dataset.synthetic``, 1 GiB per array,
2 GiB per pair) in two Zarr v3 groups ``low.zarr`` and ``GT.zarr`` (one array per image,
chunks ``32x512x512``, uncompressed) under ``<data-dir>/scale``.  Larger datasets reuse the
generated pairs as hard links under other array names: different stores to caredask (their
task names differ), no extra disk space.  A ``stamp.json`` records what was generated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (128, 2048, 2048)
CHUNKS = (32, 512, 512)
PATCH = (16, 64, 64)
K = 128
GiB = 2**30
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data"


def _stamp(n_pairs: int) -> dict[str, Any]:
    import caredask.dataset.synthetic as syn

    digest = hashlib.sha256(Path(syn.__file__).read_bytes()).hexdigest()[:16]
    return {"shape": SHAPE, "chunks": CHUNKS, "pairs": n_pairs, "synthetic": digest}


def ensure_pairs(data_dir: Path, n_pairs: int = 2) -> Path:
    """Generate (once) ``n_pairs`` real pairs; return the folder holding low.zarr and GT.zarr."""
    import zarr

    from caredask.dataset.synthetic import synthetic_pair

    base = Path(data_dir) / "scale"
    stamp = base / "stamp.json"
    want = _stamp(n_pairs)
    if stamp.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(want)):
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    groups = {
        k: zarr.open_group(base / f"{k}.zarr", mode="w", zarr_format=3) for k in ("low", "GT")
    }
    for i in range(n_pairs):
        t0 = time.perf_counter()
        src, tgt = synthetic_pair(SHAPE, seed=i)
        for kind, a in (("low", src), ("GT", tgt)):
            arr = groups[kind].create_array(
                str(i), shape=SHAPE, chunks=CHUNKS, dtype="uint16", compressors=None
            )
            arr[...] = a
        del src, tgt
        print(f"generated pair {i} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps(want))
    return base


def dataset(data_dir: Path, n_pairs: int) -> tuple[Path, Path]:
    """``low`` and ``GT`` groups with ``n_pairs`` arrays (hard links to the generated pairs)."""
    import zarr

    base = ensure_pairs(data_dir)
    real = sorted((base / "low.zarr").glob("[0-9]*"), key=lambda p: int(p.name))
    if n_pairs == len(real):
        return base / "low.zarr", base / "GT.zarr"
    out = base / f"linked{n_pairs}"
    for kind in ("low", "GT"):
        g = out / f"{kind}.zarr"
        if (g / str(n_pairs - 1)).is_dir():
            continue
        shutil.rmtree(g, ignore_errors=True)
        zarr.open_group(g, mode="w", zarr_format=3)
        for i in range(n_pairs):
            shutil.copytree(
                base / f"{kind}.zarr" / str(i % len(real)), g / str(i), copy_function=os.link
            )
    return out / "low.zarr", out / "GT.zarr"


def slabs(data_dir: Path, planes: int) -> tuple[Path, Path]:
    """``low``/``GT`` groups of the generated pairs cut into images of ``planes`` Z planes."""
    import zarr

    base = ensure_pairs(data_dir)
    out = base / f"slabs{planes}"
    real = sorted((base / "low.zarr").glob("[0-9]*"), key=lambda p: int(p.name))
    per = SHAPE[0] // planes
    n = len(real) * per
    for kind in ("low", "GT"):
        g = out / f"{kind}.zarr"
        if (g / str(n - 1) / "zarr.json").is_file():
            continue
        shutil.rmtree(g, ignore_errors=True)
        grp = zarr.open_group(g, mode="w", zarr_format=3)
        for i in range(n):
            src = zarr.open_array(base / f"{kind}.zarr" / str(i // per), mode="r")
            z0 = (i % per) * planes
            arr = grp.create_array(
                str(i), shape=(planes, *SHAPE[1:]), chunks=CHUNKS, dtype="uint16", compressors=None
            )
            arr[...] = src[z0 : z0 + planes]
    return out / "low.zarr", out / "GT.zarr"


def raw_data(low: Path, gt: Path) -> Any:
    """csbdeep-style RawData over the two groups."""
    from caredask.csbdeep import RawData

    return RawData.from_sources(str(low), str(gt), axes="ZYX")


def compare_stores(a: str | Path, b: str | Path) -> bool:
    """True when X and Y of two training-data stores are bit-identical (read in slabs)."""
    import zarr

    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    for name in ("X", "Y"):
        xa, xb = ga[name], gb[name]
        if xa.shape != xb.shape:
            return False
        step = 64
        for lo in range(0, xa.shape[0], step):
            if not np.array_equal(xa[lo : lo + step], xb[lo : lo + step]):
                return False
    return True


class TreeRSS:
    """Peak of the summed RSS of a process and all its descendants, sampled every ``dt`` s."""

    def __init__(self, pid: int | None = None, dt: float = 0.1) -> None:
        import psutil

        self.proc = psutil.Process(pid or os.getpid())
        self.dt = dt
        self.peak = 0
        self.peak_self = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        import psutil

        total = 0
        try:
            own = self.proc.memory_info().rss
            total = own
            for c in self.proc.children(recursive=True):
                try:
                    total += c.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return
        self.peak = max(self.peak, total)
        self.peak_self = max(self.peak_self, own)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.dt)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def gib(n: float) -> str:
    return f"{n / GiB:.2f}"


SCHEDULERS = {
    "threads": None,
    "1x2": (1, 2),
    "2x1": (2, 1),
}
"""Scheduler cases: the local threaded scheduler, or a LocalCluster (workers, threads each)."""


def start_cluster(spec: str, memory_limit: str | None = None) -> Any:
    """A distributed Client on a LocalCluster of worker processes (None for ``threads``)."""
    shape = SCHEDULERS[spec] if spec in SCHEDULERS else tuple(map(int, spec.split("x")))
    if shape is None:
        return None
    from distributed import Client, LocalCluster

    kw: dict[str, Any] = {} if memory_limit is None else {"memory_limit": memory_limit}
    from caredask.sampling.schedule import worker_environment

    with worker_environment():  # as `caredask --workers N` starts its LocalCluster
        cluster = LocalCluster(
            n_workers=shape[0],
            threads_per_worker=shape[1],
            processes=True,
            dashboard_address=":0",
            **kw,
        )
    return Client(cluster)


def stop_cluster(client: Any) -> None:
    if client is not None:
        cluster = client.cluster
        client.close()
        cluster.close()


def run_job(raw: Any, out: str | Path, **kw: Any) -> float:
    """Time ``generate_training_data`` (16x64x64 patches, 128 per image, seed 0) into ``out``."""
    import caredask

    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(f"{out}.partial", ignore_errors=True)
    t0 = time.perf_counter()
    caredask.generate_training_data(raw, PATCH, K, seed=0, save_file=str(out), **kw)
    return time.perf_counter() - t0
