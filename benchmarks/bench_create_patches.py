#!/usr/bin/env python
"""Benchmark caredask's csbdeep-compatible ``create_patches`` against csbdeep 0.8.2.

For every case, synthetic uint16 TIFF pairs are written once into ``--data-dir`` (reused while a
JSON stamp says they were made with the same parameters), then each tool runs ``create_patches``
in its own fresh interpreter.  The parent reads each child's peak RSS with ``os.wait4`` and
compares the children's SHA-256 digests of X, Y and of the global numpy RNG state afterwards.

Example::

    python benchmarks/bench_create_patches.py --cases a,b --repeat 3
    # harness self-test, csbdeep on both sides, tiny data:
    python benchmarks/bench_create_patches.py --scale 0.125 --caredask-module csbdeep.data

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30

# name: (n_images, shape, patch_size, patches per image, axes, dense)
CASES: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int, str, bool]] = {
    "a": (16, (2048, 2048), (128, 128), 64, "YX", False),
    "b": (4, (64, 1024, 1024), (16, 64, 64), 128, "ZYX", False),
    "c": (2, (128, 2048, 2048), (16, 64, 64), 128, "ZYX", False),
    "a_dense": (16, (2048, 2048), (128, 128), 64, "YX", True),
    "b_dense": (4, (64, 1024, 1024), (16, 64, 64), 128, "ZYX", True),
    "c_dense": (1, (128, 2048, 2048), (16, 64, 64), 128, "ZYX", True),
}


# --------------------------------------------------------------------------- child side
def _digest(a: Any) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(a).data.cast("B")).hexdigest()


def _rng_digest() -> str:
    import numpy as np

    state: Any = np.random.get_state()
    name, keys, pos, has_gauss, cached = state
    head = repr((name, pos, has_gauss, float(cached))).encode()
    return hashlib.sha256(head + keys.tobytes()).hexdigest()


def _setup_scheduler(scheduler: str, workers: int | None) -> Any:
    import dask

    if scheduler in ("threads", "processes", "synchronous"):
        opts: dict[str, Any] = {"scheduler": scheduler}
        if workers:
            opts["num_workers"] = workers
        dask.config.set(opts)
        return None
    from distributed import Client

    return Client(scheduler)  # becomes dask's default scheduler


def run_child(cfg: dict[str, Any]) -> None:
    """Run one ``create_patches`` call as described by ``cfg`` and write a JSON result."""
    import importlib
    import resource

    t_import = time.perf_counter()
    client = None
    if cfg["tool"] == "caredask":
        client = _setup_scheduler(cfg["scheduler"], cfg["workers"])
    mod = importlib.import_module(cfg["module"])
    raw_data_cls, create_patches = mod.RawData, mod.create_patches
    import numpy as np

    import_s = time.perf_counter() - t_import
    raw = raw_data_cls.from_folder(cfg["base"], ["low"], "GT", axes=cfg["axes"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    np.random.seed(0)
    t0 = time.perf_counter()
    X, Y, axes = create_patches(raw, tuple(cfg["patch_size"]), cfg["n_per_image"], verbose=False)
    wall = time.perf_counter() - t0
    result = {
        "wall_s": wall,
        "import_s": import_s,
        "rss_before_bytes": rss_before,
        "X_shape": list(X.shape),
        "X_dtype": str(X.dtype),
        "axes": axes,
        "X_sha256": _digest(X),
        "Y_sha256": _digest(Y),
        "rng_sha256": _rng_digest(),
    }
    Path(cfg["result_file"]).write_text(json.dumps(result))
    if client is not None:
        client.close()


# --------------------------------------------------------------------------- data
def case_params(name: str, scale: float, seed: int) -> dict[str, Any]:
    """Parameters of case ``name`` with spatial sizes multiplied by ``scale`` (>= patch size)."""
    n, shape, patch, k, axes, dense = CASES[name]
    scaled = tuple(max(p, round(d * scale)) for d, p in zip(shape, patch, strict=True))
    return {
        "case": name,
        "n_images": n,
        "shape": list(scaled),
        "patch_size": list(patch),
        "n_per_image": k,
        "axes": axes,
        "dense": dense,
        "seed": seed,
    }


def _generator_hash() -> str:
    src = (ROOT / "caredask" / "dataset" / "synthetic.py").read_bytes()
    return hashlib.sha256(src).hexdigest()[:16]


def ensure_data(data_dir: Path, params: dict[str, Any], scale: float) -> Path:
    """Write the case's TIFF pairs unless a matching stamp says they already exist."""
    from caredask.dataset.synthetic import write_tiff_pairs

    base = data_dir / (params["case"] if scale == 1 else f"{params['case']}-scale{scale:g}")
    want = {k: params[k] for k in ("n_images", "shape", "dense", "seed")}
    want["generator"] = _generator_hash()
    stamp = base / "stamp.json"
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"[data] reusing {base}", flush=True)
        return base
    for sub in ("low", "GT"):
        shutil.rmtree(base / sub, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    n_bytes = 4 * params["n_images"] * _prod(params["shape"])
    print(f"[data] writing {base} ({n_bytes / GiB:.2f} GiB) ...", flush=True)
    t0 = time.perf_counter()
    write_tiff_pairs(
        base, params["n_images"], tuple(params["shape"]), seed=params["seed"], dense=params["dense"]
    )
    dt = time.perf_counter() - t0
    print(f"[data] wrote in {dt:.1f} s ({n_bytes / 2**20 / dt:.0f} MiB/s)", flush=True)
    stamp.write_text(json.dumps(want))
    return base


def _prod(shape: list[int]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


# --------------------------------------------------------------------------- parent side
def _sample_tree_rss(pid: int) -> int:
    try:
        import psutil
    except ImportError:
        return 0
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_tool(cfg: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """Run one child; return its JSON result plus peak RSS, or an ``error`` entry."""
    with tempfile.TemporaryDirectory(prefix="bench_cp_") as tmp:
        cfg = {**cfg, "result_file": str(Path(tmp) / "result.json")}
        cfg_file = Path(tmp) / "cfg.json"
        cfg_file.write_text(json.dumps(cfg))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(cfg_file)]
        err_file = Path(tmp) / "stderr.txt"
        with err_file.open("wb") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            status, usage, tree_peak = _wait(proc, timeout)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = err_file.read_text(errors="replace")
        sys.stderr.write(stderr)
        res_file = Path(cfg["result_file"])
        if proc.returncode != 0 or not res_file.exists():
            last = stderr.strip().splitlines()[-1:] or ["no stderr"]
            return {"error": f"exit code {proc.returncode}: {last[0]}"}
        result: dict[str, Any] = json.loads(res_file.read_text())
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # KiB on Linux
    result["tree_peak_rss_bytes"] = tree_peak
    return result


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, Any, int]:
    """Reap ``proc`` with ``os.wait4`` (its own rusage), sampling the process tree's RSS."""
    tree_peak, t0 = 0, time.monotonic()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage, tree_peak
        tree_peak = max(tree_peak, _sample_tree_rss(proc.pid))
        if timeout and time.monotonic() - t0 > timeout:
            proc.kill()
        time.sleep(0.1)


def _fmt_tool(runs: list[dict[str, Any]]) -> tuple[str, float | None, float | None]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return f"FAILED: {runs[0]['error']}", None, None
    walls = sorted(r["wall_s"] for r in ok)
    rss = max(r["peak_rss_bytes"] for r in ok) / GiB
    tree = max(r["tree_peak_rss_bytes"] for r in ok) / GiB
    med = statistics.median(walls)
    text = f"{walls[0]:8.2f} {med:8.2f} {walls[-1]:8.2f} {rss:9.2f} {tree:9.2f}   ({len(ok)} ok)"
    return text, med, rss


def _outputs_verdict(runs: dict[str, list[dict[str, Any]]]) -> str:
    keys = ("X_shape", "axes", "X_sha256", "Y_sha256", "rng_sha256")
    sigs = {
        tool: {tuple(json.dumps(r[k]) for k in keys) for r in rs if "error" not in r}
        for tool, rs in runs.items()
    }
    if any(not s for s in sigs.values()):
        return "n/a (a tool failed)"
    if any(len(s) > 1 for s in sigs.values()):
        return "MISMATCH (a tool is not deterministic across repeats)"
    (a,), (b,) = sigs.values()
    if a == b:
        return "MATCH (X, Y, axes and global RNG state identical)"
    bad = [k for k, x, y in zip(keys, a, b, strict=True) if x != y]
    return f"MISMATCH in {', '.join(bad)}"


def report(params: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> bool:
    """Print the table of one case; return True if the outputs match."""
    n_bytes = 4 * params["n_images"] * _prod(params["shape"])
    print(
        f"\ncase {params['case']}: {params['n_images']} x {tuple(params['shape'])} uint16 pairs "
        f"({n_bytes / GiB:.2f} GiB), patch {tuple(params['patch_size'])} x "
        f"{params['n_per_image']}/image, dense={params['dense']}"
    )
    print(
        f"{'tool':10s} {'wall min':>8s} {'median':>8s} {'max':>8s} {'RSS GiB':>9s} {'tree GiB':>9s}"
    )
    stats = {}
    for tool, rs in runs.items():
        text, med, rss = _fmt_tool(rs)
        stats[tool] = (med, rss)
        print(f"{tool:10s} {text}")
    (w_ref, r_ref), (w_new, r_new) = (
        stats.get("csbdeep", (None, None)),
        stats.get("caredask", (None, None)),
    )
    if w_ref and w_new and r_ref and r_new:
        speedup, rss_ratio = w_ref / w_new, r_new / r_ref
        print(f"speed-up csbdeep/caredask: {speedup:.2f}x   RSS caredask/csbdeep: {rss_ratio:.2f}")
    verdict = _outputs_verdict(runs) if len(runs) == 2 else "n/a (one tool)"
    print(f"outputs: {verdict}")
    return verdict.startswith("MATCH")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default="a,b,c", help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--scale", type=float, default=1.0, help="multiply image sizes (>= patch)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "data")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool (interleaved)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    p.add_argument("--tools", default="csbdeep,caredask", help="which tools to run")
    p.add_argument(
        "--scheduler",
        default="threads",
        help="caredask's dask scheduler: threads, processes, synchronous or a distributed address",
    )
    p.add_argument("--workers", type=int, default=None, help="dask num_workers (default: all)")
    p.add_argument(
        "--caredask-module",
        default="caredask.csbdeep",
        help="module giving caredask's RawData/create_patches (csbdeep.data to test the harness)",
    )
    p.add_argument("--timeout", type=float, default=None, help="kill a child after this many s")
    p.add_argument("--json", type=Path, default=None, help="also write all results here")
    p.add_argument("--generate-only", action="store_true", help="only write the data")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (1 on any failure or mismatch)."""
    args = parse_args(argv)
    if args.child:
        run_child(json.loads(args.child.read_text()))
        return 0
    sys.path.insert(0, str(ROOT))
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; choose from {list(CASES)}", file=sys.stderr)
        return 2
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    modules = {"csbdeep": "csbdeep.data", "caredask": args.caredask_module}
    all_ok, results = True, []
    for name in names:
        params = case_params(name, args.scale, args.seed)
        base = ensure_data(args.data_dir, params, args.scale)
        if args.generate_only:
            continue
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        for i in range(args.repeat):
            for tool in tools:
                cfg = {
                    **params,
                    "tool": tool,
                    "module": modules[tool],
                    "base": str(base),
                    "scheduler": args.scheduler,
                    "workers": args.workers,
                }
                print(f"[run] case {name} {tool} #{i + 1} ...", flush=True)
                runs[tool].append(run_tool(cfg, args.timeout))
        all_ok &= report(params, runs)
        results.append({"params": params, "scheduler": args.scheduler, "runs": runs})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all_ok or args.generate_only else 1


if __name__ == "__main__":
    sys.exit(main())
