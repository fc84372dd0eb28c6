"""Kill a 4 GiB ``.zarr`` job half way (SIGKILL), rerun it: time and identity of the result.

The job: the 2 generated pairs of 128x2048x2048 cut into ``--planes``-plane images (default
64: 4 images of 1 GiB source+target), 16x64x64 patches, 128 per image, threaded scheduler,
each run in a fresh interpreter.  In one run of this script:

1. an uninterrupted run (``full``, the reference store);
2. the same job, killed with SIGKILL once half of its images are recorded in
   ``<out>.partial/progress`` (or at ``--kill-at`` x the full time, whichever comes first);
3. the rerun, which resumes; its wall time / the full run's wall time (target <= 0.6), and
   whether its store is bit-identical to the reference.

    python benchmarks/bench_resume.py [--planes 64] [--kill-at 0.7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale_common import DEFAULT_DATA, PATCH, K, compare_stores, raw_data, slabs


def child(out: str, data_dir: Path, planes: int) -> None:
    import caredask

    low, gt = slabs(data_dir, planes)
    raw = raw_data(low, gt)
    t0 = time.perf_counter()
    caredask.generate_training_data(raw, PATCH, K, seed=0, save_file=out, resume=True)
    print(json.dumps({"wall": time.perf_counter() - t0}))


def _cmd(out: Path, a: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--child",
        str(out),
        "--data-dir",
        str(a.data_dir),
        "--planes",
        str(a.planes),
    ]


def _run(out: Path, a: argparse.Namespace) -> tuple[float, str, list[float]]:
    """Run the job to its end; also when each image was recorded (s after the start)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(_cmd(out, a), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[float] = []
    while proc.poll() is None:
        n = _done(out)
        seen += [time.perf_counter() - t0] * (n - len(seen))
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    total = time.perf_counter() - t0
    if proc.returncode:
        print(stderr, file=sys.stderr)
        raise SystemExit("run failed")
    wall = json.loads(stdout.strip().splitlines()[-1])["wall"]
    print(f"  process {total:.1f} s, job {wall:.1f} s", file=sys.stderr, flush=True)
    return wall, stderr, [t / total for t in seen]


def _done(out: Path) -> int:
    prog = Path(f"{out}.partial") / "progress"
    return sum(1 for p in prog.iterdir() if p.is_dir()) if prog.is_dir() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planes", type=int, default=64, help="Z planes per image (divides 128)")
    ap.add_argument("--kill-at", type=float, default=0.7, help="latest kill, x full job time")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.data_dir, a.planes)
        return 0
    low, _ = slabs(a.data_dir, a.planes)
    n_images = sum(1 for p in low.iterdir() if p.is_dir())
    tmp = Path(tempfile.mkdtemp(prefix="bench_resume_", dir=a.data_dir))
    ref, out = tmp / "ref.zarr", tmp / "out.zarr"
    try:
        print("full run", file=sys.stderr)
        full, _, marks = _run(ref, a)
        print("interrupted run", file=sys.stderr)
        proc = subprocess.Popen(_cmd(out, a), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.perf_counter()
        while proc.poll() is None:
            elapsed = time.perf_counter() - t0
            if _done(out) >= n_images // 2 or elapsed > a.kill_at * full:
                break
            time.sleep(0.05)
        killed_at = time.perf_counter() - t0
        done_at_kill = _done(out)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"  killed after {killed_at:.1f} s, {done_at_kill} images recorded", file=sys.stderr)
        print("rerun", file=sys.stderr)
        rerun, err, _ = _run(out, a)
        resumed_line = next((ln for ln in err.splitlines() if "resuming" in ln), "(no resume line)")
        same = compare_stores(ref, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{n_images} images of {a.planes}x2048x2048 (4 GiB), threaded scheduler")
    print(
        "| full run | killed at (process time) | images recorded | rerun | rerun / full | store |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {full:.1f} s | {killed_at:.1f} s ({killed_at / full:.2f} x full) | "
        f"{done_at_kill}/{n_images} | {rerun:.1f} s | {rerun / full:.2f} | "
        f"{'identical' if same else 'DIFFERENT'} |"
    )
    print(resumed_line)
    shown = ", ".join(f"{m:.2f}" for m in marks)
    print(f"uninterrupted run: images recorded at {shown} of its process time")
    return 0 if same and rerun / full <= 0.6 else 1


if __name__ == "__main__":
    sys.exit(main())
