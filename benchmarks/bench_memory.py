"""Peak memory of patch jobs: flat in the data size, 1 GiB workers, a lean client.

Three parts, each case in a fresh interpreter (``--child``) watched by this process:

1. ``flat``: threaded scheduler, default memory budget, 1, 4 and 16 GiB of source+target
   (1 GiB: the first 64 planes of one pair, copied; 16 GiB: 8 pairs, hard links to the 2 generated
   ones).  Peak RSS of the whole process tree (psutil, every 0.1 s) and ``ru_maxrss``.
2. ``limit``: LocalCluster of 2 worker processes x 1 thread with ``memory_limit="1GiB"`` on
   the 2 GiB pairs (4 GiB); counts workers the scheduler removed (a nanny restarting a worker
   that exceeded its limit removes it) and checks the worker pids before and after.
3. ``client``: LocalCluster 2 x 1 writing ``.zarr`` outputs of 1 and 4 GiB (2048 and 8192
   patches of 16x64x64 from one 1 GiB pair, X and Y float32); the client process's own peak RSS
   (``ru_maxrss`` of the child: client plus the in-process scheduler; workers are separate
   processes).

    python benchmarks/bench_memory.py [--parts flat,limit,client] [--sizes 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import SchedulerPlugin
from scale_common import (
    DEFAULT_DATA,
    PATCH,
    GiB,
    TreeRSS,
    dataset,
    gib,
    raw_data,
    slabs,
    start_cluster,
    stop_cluster,
)


def _raw_for(size: int, data_dir: Path) -> Any:
    if size == 1:
        low, gt = slabs(data_dir, 64)
        return raw_data(low / "0", gt / "0")
    if size % 2:
        raise SystemExit("sizes must be 1 or even (pairs of 2 GiB)")
    return raw_data(*dataset(data_dir, size // 2))


class _Removals(SchedulerPlugin):
    """Scheduler plugin: workers removed from the scheduler (restarts, deaths)."""

    name = "bench-removals"

    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        self.removed.append(worker)


def child(spec: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    import caredask

    raw = _raw_for(spec["size"], data_dir)
    client = start_cluster(spec["scheduler"], spec.get("memory_limit"))
    out: dict[str, Any] = {}
    plugin = _Removals()
    try:
        pids0: dict[str, int] = {}
        if client is not None:
            client.cluster.scheduler.add_plugin(plugin, name=_Removals.name)
            pids0 = client.run(os.getpid)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        dest = Path(spec["out"])
        t0 = time.perf_counter()
        caredask.generate_training_data(raw, PATCH, spec["k"], seed=0, save_file=str(dest))
        out["wall"] = time.perf_counter() - t0
        out["client_base"] = base
        out["client_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if client is not None:
            pids1 = client.run(os.getpid)
            out["same_workers"] = pids0 == pids1
            out["removed"] = len(plugin.removed)
        shutil.rmtree(dest, ignore_errors=True)
    finally:
        stop_cluster(client)
    return out


def run_case(spec: dict[str, Any], data_dir: Path, tmp: Path) -> dict[str, Any]:
    spec = {**spec, "out": str(tmp / "out.zarr")}
    cmd = [sys.executable, __file__, "--child", json.dumps(spec), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeRSS(proc.pid) as rss:
        stdout, stderr = proc.communicate()
    if proc.returncode:
        print(stderr, file=sys.stderr)
        raise SystemExit(f"case {spec} failed")
    res = json.loads(stdout.strip().splitlines()[-1])
    res["tree_peak"] = rss.peak
    res["worker_log_restarts"] = stderr.count("Restarting worker")
    shutil.rmtree(tmp / "out.zarr", ignore_errors=True)
    shutil.rmtree(tmp / "out.zarr.partial", ignore_errors=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="flat,limit,client")
    ap.add_argument("--sizes", default="1,4,16", help="GiB of source+target for 'flat'")
    ap.add_argument("--client-patches", default="2048,8192", help="patches for 'client'")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child), a.data_dir)))
        return 0
    dataset(a.data_dir, 2)  # generate the data before any measured child
    slabs(a.data_dir, 64)
    parts = a.parts.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench_memory_", dir=a.data_dir))
    ok = True
    try:
        if "flat" in parts:
            rows = []
            for size in map(int, a.sizes.split(",")):
                r = run_case({"size": size, "scheduler": "threads", "k": 128}, a.data_dir, tmp)
                rows.append((size, r))
                print(f"flat {size} GiB: {r}", file=sys.stderr, flush=True)
            low = min(r["tree_peak"] for _, r in rows)
            print("\nthreaded scheduler, default budget, 128 patches/image")
            print("| data | wall | s/GiB | peak RSS (tree) | ru_maxrss | vs smallest |")
            print("|---|---|---|---|---|---|")
            for size, r in rows:
                print(
                    f"| {size} GiB | {r['wall']:.1f} s | {r['wall'] / size:.1f} | "
                    f"{gib(r['tree_peak'])} GiB | {gib(r['client_peak'])} GiB | "
                    f"{r['tree_peak'] / low:.2f}x |"
                )
            spread = max(r["tree_peak"] for _, r in rows) / low
            print(f"spread max/min {spread:.2f} (target <= 1.25)")
        if "limit" in parts:
            spec = {"size": 4, "scheduler": "2x1", "k": 128, "memory_limit": "1GiB"}
            r = run_case(spec, a.data_dir, tmp)
            print(f"limit: {r}", file=sys.stderr)
            print("\nLocalCluster 2 workers x 1 thread, memory_limit=1GiB, 2 pairs of 2 GiB")
            print(
                f"wall {r['wall']:.1f} s, workers removed by the scheduler: {r['removed']}, "
                f"same worker pids before/after: {r['same_workers']}, nanny restart lines: "
                f"{r['worker_log_restarts']}, tree peak {gib(r['tree_peak'])} GiB"
            )
            ok &= r["removed"] == 0 and r["same_workers"]
        if "client" in parts:
            print("\nLocalCluster 2 workers x 1 thread, .zarr output, one 1 GiB pair (64 planes)")
            print("| patches | output (X+Y) | wall | client peak RSS | client before job |")
            print("|---|---|---|---|---|")
            for k in map(int, a.client_patches.split(",")):
                r = run_case({"size": 1, "scheduler": "2x1", "k": k}, a.data_dir, tmp)
                out_bytes = 2 * k * 4 * int(np.prod(PATCH))
                print(
                    f"| {k} | {gib(out_bytes)} GiB | {r['wall']:.1f} s | "
                    f"{gib(r['client_peak'])} GiB | {gib(r['client_base'])} GiB |",
                    flush=True,
                )
                ok &= r["client_peak"] < GiB // 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
