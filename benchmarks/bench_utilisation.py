"""Utilisation of a cluster on a 1 TiB virtual job: measured parts and a discrete-event model.

The dataset: 512 pairs of 128x2048x2048 uint16 (1 TiB), chunks 32x512x512, each chunk computed
on demand from its block index (``virtual_data.py``), never stored.  16x64x64 patches, 128 per
image, ``.zarr`` output.  Steps (each scheduler case in a fresh interpreter):

1. plan: time from the ``generate_training_data`` call on all 512 pairs to its first task
   (items pulled, job planned, first graphs built), and the client's memory for it;
2. scheduler overhead: 500 no-op tasks in one compute (seconds per task) and one-task computes
   (round-trip latency), on the threaded scheduler and a 2-process LocalCluster;
3. a measured run on a slice (``--slice`` images) on the threaded scheduler, LocalCluster
   1 worker x 2 threads and 2 workers x 1 thread: wall time, every client call (statistics,
   mask, counts, locate, extraction) with the client work before it, every task with its
   duration (local callbacks passed to each compute; distributed's task stream), tasks per
   image per phase;
4. the model (``pipeline_model.py``): the threaded run's task graph per batch (dependencies,
   task names), task durations and client work from a cluster run, round trips and scheduler
   cost from step 2, the pipeline's admission rule (``schedule.batch_cost`` under the default
   budget, at most ``schedule.max_batches`` batches).  Checked against the 1- and 2-worker
   runs of the slice, then run for 512 images on 8, 64 and 256 workers x 2 threads, with
   variants that remove one limit at a time to show which part limits utilisation.

    python benchmarks/bench_utilisation.py [--slice 2] [--worker-memory 8GiB]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dask
from dask.utils import key_split, parse_bytes
from pipeline_model import Batch, Call, simulate
from scale_common import DEFAULT_DATA, PATCH, K, TreeRSS, start_cluster, stop_cluster
from virtual_data import virtual_pairs

SHAPE = (128, 2048, 2048)
CHUNKS = (32, 512, 512)
N_IMAGES = 512
PHASES = ("statistics", "mask", "counts", "locate", "extract")


def _noop(i: int) -> int:
    return i


# ---------------------------------------------------------------- instrumentation


class Recorder:
    """Wraps ``dask.compute``/``dask.persist`` and the pipeline's per-batch function.

    On local schedulers every call gets its own explicit callbacks (dask's global callbacks are
    swapped out by concurrent computes), recording each task's start, end and dependencies.
    """

    def __init__(self, local: bool) -> None:
        self.local = local
        self.calls: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self._orig: dict[str, Any] = {}

    def _callbacks(self, call: dict[str, Any]) -> list[tuple[Any, ...]]:
        # A key computed again by a later call (a chunk read by the statistics and again by
        # the mask pass) is a task of each call: tasks are recorded per (call, key).
        cid = call["id"]

        def start(dsk: Any) -> None:
            for k, v in dsk.items():
                deps = getattr(v, "dependencies", None)
                if deps is None:
                    from dask.core import get_dependencies

                    deps = get_dependencies(dsk, k)
                self.tasks[f"{cid}|{k}"] = {
                    "call": cid,
                    "key": str(k),
                    "deps": [f"{cid}|{d}" for d in deps],
                }

        def pretask(key: Any, dsk: Any, state: Any) -> None:
            self.tasks[f"{cid}|{key}"]["start"] = time.time()

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            self.tasks[f"{cid}|{key}"]["end"] = time.time()

        return [(start, None, pretask, posttask, None)]

    def _wrap(self, name: str) -> Any:
        orig = getattr(dask, name)

        def wrapped(*args: Any, **kw: Any) -> Any:
            with self.lock:
                call = {"id": len(self.calls), "kind": name, "thread": threading.get_ident()}
                self.calls.append(call)
            if self.local:
                kw["callbacks"] = self._callbacks(call)
            call["start"] = time.time()
            try:
                return orig(*args, **kw)
            finally:
                call["end"] = time.time()

        return wrapped

    def install(self) -> None:
        import caredask.sampling.pipeline as pl

        self._orig = {"compute": dask.compute, "persist": dask.persist, "lazy": pl._process_lazy}
        dask.compute, dask.persist = self._wrap("compute"), self._wrap("persist")
        orig_lazy = pl._process_lazy

        def lazy(*args: Any) -> Any:
            b = {"thread": threading.get_ident(), "start": time.time(), "items": len(args[0])}
            try:
                return orig_lazy(*args)
            finally:
                b["end"] = time.time()
                with self.lock:
                    self.batches.append(b)

        pl._process_lazy = lazy  # type: ignore[assignment]

    def uninstall(self) -> None:
        import caredask.sampling.pipeline as pl

        dask.compute, dask.persist = self._orig["compute"], self._orig["persist"]
        pl._process_lazy = self._orig["lazy"]

    def batch_calls(self) -> list[list[dict[str, Any]]]:
        """Calls of each batch in order (matched by thread and time)."""
        out = []
        for b in sorted(self.batches, key=lambda b: b["start"]):
            calls = [
                c
                for c in self.calls
                if c["thread"] == b["thread"] and b["start"] <= c["start"] <= b["end"]
            ]
            out.append(sorted(calls, key=lambda c: c["start"]))
        return out


# ---------------------------------------------------------------- measurements (children)


def overhead(n: int = 500, trips: int = 10) -> dict[str, float]:
    """Per no-op task in one compute: wall seconds, and CPU seconds of this process (client and,
    for a LocalCluster, the in-process scheduler: the serial part); one-task round trip."""
    tasks = [dask.delayed(_noop, pure=True)(i, dask_key_name=f"noop-{i}") for i in range(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    dask.compute(*tasks)
    per_task = (time.perf_counter() - t0) / n
    cpu = (time.process_time() - c0) / n
    rtts = []
    for i in range(trips):
        t = dask.delayed(_noop, pure=True)(i, dask_key_name=f"trip-{i}")
        t0 = time.perf_counter()
        dask.compute(t)
        rtts.append(time.perf_counter() - t0)
    return {"per_task": per_task, "cpu_per_task": cpu, "rtt": statistics.median(rtts)}


class _Stop(Exception):
    pass


def plan_child(out: str) -> dict[str, Any]:
    """Time to the first task of the 512-pair job (threaded scheduler), then stop it."""
    import psutil

    import caredask

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    raw = virtual_pairs(N_IMAGES, SHAPE, CHUNKS)
    first: dict[str, float] = {}
    orig = dask.compute

    def pretask(key: Any, dsk: Any, state: Any) -> None:
        first.setdefault("task", time.time())
        raise _Stop

    def compute(*args: Any, **kw: Any) -> Any:
        first.setdefault("call", time.time())
        kw["callbacks"] = [(None, None, pretask, None, None)]
        return orig(*args, **kw)

    dask.compute = compute
    with TreeRSS() as rss:
        t0 = time.time()
        try:
            caredask.generate_training_data(raw, PATCH, K, seed=0, save_file=out)
        except _Stop:
            pass
    dask.compute = orig
    return {
        "first_call": first["call"] - t0,
        "first_task": first["task"] - t0,
        "rss_before": rss0,
        "rss_peak": rss.peak_self,
    }


def slice_child(case: str, n: int, out: str) -> dict[str, Any]:
    """Overheads, then the measured run of ``n`` images on scheduler ``case``."""
    import caredask

    client = start_cluster(case)
    try:
        res: dict[str, Any] = {"case": case, "overhead": overhead()}
        if client is not None:
            res["threads"] = sum(client.nthreads().values())
            limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
            res["memory_limit"] = sum(limits)
        # The model is of 64 workers x 2 threads: every run of the slice (the threaded one
        # that gives the model its task structure, and the LocalClusters that check it) uses
        # the work blocks of such a cluster, MAX_WORK_BLOCK (a 2-thread cluster would keep
        # the store's read unit).
        import caredask.sampling.create as create
        from caredask.sampling.schedule import MAX_WORK_BLOCK

        create.work_block_bytes = lambda client=None: MAX_WORK_BLOCK  # type: ignore[assignment]
        rec = Recorder(local=client is None)
        rec.install()
        raw = virtual_pairs(n, SHAPE, CHUNKS)
        stream = None
        t0 = time.time()
        if client is not None:
            from distributed import get_task_stream

            with get_task_stream(client) as ts:
                caredask.generate_training_data(raw, PATCH, K, seed=0, save_file=out)
            stream = ts.data
        else:
            caredask.generate_training_data(raw, PATCH, K, seed=0, save_file=out)
        res["wall"] = time.time() - t0
        rec.uninstall()
        res["t0"] = t0
        res["batches"] = [[dict(c) for c in calls] for calls in rec.batch_calls()]
        res["batch_spans"] = sorted(
            [(b["start"] - t0, b["end"] - t0) for b in rec.batches], key=lambda s: s[0]
        )
        if client is None:
            res["tasks"] = rec.tasks
        else:
            res["stream"] = [
                {
                    "key": str(t["key"]),
                    "dur": sum(
                        s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute"
                    ),
                }
                for t in stream or []
            ]
    finally:
        stop_cluster(client)
    return res


# ---------------------------------------------------------------- turning runs into the model


def _phase_of_call(i: int, n_calls: int) -> str:
    return PHASES[i] if n_calls == len(PHASES) else f"call{i}"


def structure(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per batch of the threaded run: calls with their tasks (key, prefix, deps, duration)."""
    tasks = run["tasks"]
    by_call: dict[int, list[str]] = defaultdict(list)
    for k, t in tasks.items():
        if "end" in t:
            by_call[t["call"]].append(k)
    out = []
    for calls in run["batches"]:
        bcalls = []
        for c in calls:
            keys = sorted(by_call.get(c["id"], []), key=lambda k: tasks[k]["start"])
            bcalls.append(
                {
                    "kind": c["kind"],
                    "start": c["start"],
                    "end": c["end"],
                    "keys": keys,
                    "prefix": [key_split(tasks[k].get("key", k)) for k in keys],
                    "dur": [tasks[k]["end"] - tasks[k]["start"] for k in keys],
                    "deps": [tasks[k]["deps"] for k in keys],
                }
            )
        out.append({"calls": bcalls})
    return out


def gaps(run: dict[str, Any]) -> list[float]:
    """Mean client work before each call ordinal (from the previous call's end or batch start)."""
    spans = run["batch_spans"]
    per: dict[int, list[float]] = defaultdict(list)
    for (bstart, _), calls in zip(spans, run["batches"], strict=True):
        prev = bstart + run["t0"]
        for i, c in enumerate(calls):
            per[i].append(max(0.0, c["start"] - prev))
            prev = c["end"]
    return [statistics.mean(per[i]) for i in sorted(per)]


def prefix_durations(run: dict[str, Any]) -> dict[str, float]:
    """Mean task duration per key prefix (task stream of a cluster run, callbacks otherwise)."""
    acc: dict[str, list[float]] = defaultdict(list)
    if "stream" in run:
        for t in run["stream"]:
            acc[key_split(t["key"])].append(t["dur"])
    else:
        for k, t in run["tasks"].items():
            if "end" in t:
                acc[key_split(t.get("key", k))].append(t["end"] - t["start"])
    return {p: statistics.mean(v) for p, v in acc.items()}


def make_batches(
    struct: list[dict[str, Any]],
    durs: dict[str, float] | None,
    call_gaps: list[float],
    n: int,
    cost: int,
    distributed: bool,
) -> list[Batch]:
    """``n`` model batches, replicas of the measured ones (durations by prefix if given)."""
    templates = []
    for b in struct:
        index: dict[str, int] = {}
        calls = []
        for c in b["calls"]:
            for k in c["keys"]:
                index[k] = len(index)
        for i, c in enumerate(b["calls"]):
            d = [
                durs.get(p, dd) if durs is not None else dd
                for p, dd in zip(c["prefix"], c["dur"], strict=True)
            ]
            deps = [[index[x] for x in ds if x in index] for ds in c["deps"]]
            blocking = not (distributed and c["kind"] == "persist")
            gap = call_gaps[i] if i < len(call_gaps) else 0.0
            calls.append(Call(gap, blocking, d, deps))
        templates.append(Batch(cost, calls))
    return [templates[i % len(templates)] for i in range(n)]  # the model never mutates them


# ---------------------------------------------------------------- parent


def _child(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    if res.returncode:
        print(res.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"child {args} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _cost(threads: int) -> int:
    from virtual_data import virtual_image

    from caredask.sampling.schedule import batch_cost

    x, y = virtual_image(0, 0, SHAPE, CHUNKS), virtual_image(0, 1, SHAPE, CHUNKS)
    return batch_cost([(x, y)], K, PATCH, threads)


def _cap(threads: int, cluster: bool = True) -> int:
    """The pipeline's cap on batches in flight (``schedule.max_batches`` where it exists)."""
    try:
        from caredask.sampling.schedule import max_batches
    except ImportError:  # the rule of 9b8f359
        return max(2, 2 * threads)
    return int(max_batches(object() if cluster else None, threads))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice", type=int, default=2, help="images of the measured run")
    ap.add_argument("--worker-memory", default="8GiB", help="memory_limit of modelled workers")
    ap.add_argument("--workers", default="8,64,256")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, help="write all raw measurements here")
    ap.add_argument("--base", default="2x1", help="cluster run the 1 TiB model takes inputs from")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="model processes")
    ap.add_argument("--from-json", type=Path, help="only model and report saved measurements")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        if a.child == "plan":
            print(json.dumps(plan_child(a.out)))
        else:
            print(json.dumps(slice_child(a.child, a.slice, a.out)))
        return 0
    if a.from_json:
        runs = json.loads(a.from_json.read_text())
        _print_measured(runs, a.slice)
        report(runs, a)
        return 0
    a.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_util_", dir=a.data_dir))
    runs: dict[str, Any] = {}
    runs["plan"] = _child(["--child", "plan", "--out", str(tmp / "plan.zarr")])
    for case in ("threads", "1x2", "2x1"):
        args = ["--child", case, "--slice", str(a.slice), "--out", str(tmp / f"{case}.zarr")]
        runs[case] = _child(args)
        print(f"{case}: {runs[case]['wall']:.1f} s", file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    _print_measured(runs, a.slice)
    if a.json:
        a.json.write_text(json.dumps(runs))
    report(runs, a)
    return 0


def _print_measured(runs: dict[str, Any], n: int) -> None:
    pl = runs["plan"]
    print(
        f"plan of {N_IMAGES} pairs (1 TiB), threaded: first graph submitted after "
        f"{pl['first_call']:.2f} s, first task after {pl['first_task']:.2f} s; client RSS "
        f"{pl['rss_before'] / 2**20:.0f} MiB before, {pl['rss_peak'] / 2**20:.0f} MiB peak"
    )
    print(
        "\n| scheduler | slice wall | no-op wall per task | no-op CPU per task (client+scheduler "
        "process) | one-task round trip |"
    )
    print("|---|---|---|---|---|")
    for case in ("threads", "1x2", "2x1"):
        r, o = runs[case], runs[case]["overhead"]
        print(
            f"| {case} | {r['wall']:.1f} s ({n} images) | {o['per_task'] * 1e3:.2f} ms | "
            f"{o.get('cpu_per_task', float('nan')) * 1e3:.2f} ms | {o['rtt'] * 1e3:.1f} ms |"
        )


def _tasks_table(struct: list[dict[str, Any]], run: dict[str, Any]) -> None:
    n_calls = len(struct[0]["calls"])
    g = gaps(run)
    print("\nper image (threaded run of the slice; one image per batch)")
    print("| phase (client call) | kind | tasks | task-seconds | client work before | call wall |")
    print("|---|---|---|---|---|---|")
    for i in range(n_calls):
        cs = [b["calls"][i] for b in struct if len(b["calls"]) > i]
        ntask = statistics.mean(len(c["keys"]) for c in cs)
        secs = statistics.mean(sum(c["dur"]) for c in cs)
        wall = statistics.mean(c["end"] - c["start"] for c in cs)
        print(
            f"| {_phase_of_call(i, n_calls)} | {cs[0]['kind']} | {ntask:.0f} | {secs:.1f} | "
            f"{g[i]:.2f} s | {wall:.1f} s |"
        )
    top = Counter(p for b in struct for c in b["calls"] for p in c["prefix"])
    print("task names:", ", ".join(f"{p} {n // len(struct)}" for p, n in top.most_common(12)))


def _model_run(struct: list[dict[str, Any]], r: dict[str, Any], sched: float) -> Any:
    thr = r["threads"]
    batches = make_batches(struct, prefix_durations(r), gaps(r), len(struct), _cost(thr), True)
    return simulate(batches, thr, r["memory_limit"] // 2, _cap(thr), sched, r["overhead"]["rtt"])


def report(runs: dict[str, Any], a: argparse.Namespace) -> None:
    struct = structure(runs["threads"])
    _tasks_table(struct, runs["threads"])
    print(
        "\nmodel check on the slice (task durations per task name, client work per call, round "
        "trip and scheduler cost from the run itself; scheduler cost = no-op CPU or wall per task)"
    )
    print("| run | measured wall | model (CPU/task) | ratio | model (wall/task) | ratio |")
    print("|---|---|---|---|---|---|")
    for case in ("1x2", "2x1"):
        r, o = runs[case], runs[case]["overhead"]
        m1 = _model_run(struct, r, o.get("cpu_per_task", o["per_task"]))
        m2 = _model_run(struct, r, o["per_task"])
        print(
            f"| LocalCluster {case} | {r['wall']:.1f} s | {m1.wall:.1f} s | "
            f"{m1.wall / r['wall']:.2f} | {m2.wall:.1f} s | {m2.wall / r['wall']:.2f} |"
        )
    base = runs[a.base]
    durs, call_gaps = prefix_durations(base), gaps(base)
    o = base["overhead"]
    sched, rtt = o.get("cpu_per_task", o["per_task"]), o["rtt"]
    wmem = parse_bytes(a.worker_memory)
    print(
        f"\nmodel of the 1 TiB job ({N_IMAGES} images) on workers x 2 threads, memory_limit "
        f"{a.worker_memory} each (budget: half the cluster's); from the {a.base} run: task "
        f"durations, client work ({sum(call_gaps):.2f} s per image), scheduler "
        f"{sched * 1e3:.2f} ms/task (CPU), round trip {rtt * 1e3:.1f} ms"
    )
    print(
        "| workers | variant | modelled wall | utilisation | batches in flight (max/mean) |"
        " compute bound | scheduler bound | client bound |"
    )
    print("|---|---|---|---|---|---|---|---|")
    variants: dict[str, dict[str, Any]] = {
        "as measured": {},
        "scheduler cost 0": {"sched": 0.0},
        "client work 0": {"gaps": [0.0] * len(call_gaps)},
        "no in-flight limit": {"cap": 10**6, "budget": 2**62},
        "all three": {"sched": 0.0, "gaps": [0.0] * len(call_gaps), "cap": 10**6, "budget": 2**62},
    }
    jobs = []
    for w in map(int, a.workers.split(",")):
        thr = 2 * w
        for name, v in variants.items():
            if name != "as measured" and w != 64:
                continue
            g = v.get("gaps", call_gaps)
            batches = make_batches(struct, durs, g, N_IMAGES, _cost(thr), distributed=True)
            args = (batches, thr, v.get("budget", w * wmem // 2), v.get("cap", _cap(thr)))
            jobs.append((w, name, v.get("sched", sched), (*args, v.get("sched", sched), rtt)))
    with ProcessPoolExecutor(min(len(jobs), a.jobs)) as pool:
        results = list(pool.map(_simulate, [j[3] for j in jobs]))
    for (w, name, sc, _), m in zip(jobs, results, strict=True):
        thr = 2 * w
        print(
            f"| {w} | {name} | {m.wall:.0f} s | {100 * m.utilisation:.0f} % | "
            f"{m.max_in_flight}/{m.mean_in_flight:.1f} | {m.busy / thr:.0f} s | "
            f"{m.n_tasks * sc:.0f} s | {m.client_busy:.0f} s |",
            flush=True,
        )


def _simulate(args: tuple[Any, ...]) -> Any:
    return simulate(*args)


if __name__ == "__main__":
    sys.exit(main())
