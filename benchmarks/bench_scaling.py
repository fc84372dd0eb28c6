"""Same 4 GiB Zarr job on the threaded scheduler and on two LocalCluster shapes.

Each case runs in a fresh interpreter (``--child``), alternating the cases ``--repeat`` times;
only the ``generate_training_data`` call is timed (the cluster is started before).  Prints the
median wall time of each case, its ratio to the threaded scheduler's, and whether every
output store is bit-identical to the first threaded one.

    python benchmarks/bench_scaling.py [--repeat 2] [--data-dir benchmarks/data]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scale_common import (
    DEFAULT_DATA,
    SCHEDULERS,
    compare_stores,
    dataset,
    raw_data,
    run_job,
    start_cluster,
    stop_cluster,
)

LABELS = {
    "threads": "threaded scheduler (2 threads)",
    "1x2": "LocalCluster 1 worker x 2 threads",
    "2x1": "LocalCluster 2 workers x 1 thread",
}


def child(case: str, out: str, data_dir: Path, n_pairs: int) -> None:
    low, gt = dataset(data_dir, n_pairs)
    client = start_cluster(case)
    try:
        wall = run_job(raw_data(low, gt), out)
    finally:
        stop_cluster(client)
    print(json.dumps({"case": case, "wall": wall}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=2, help="image pairs of 2 GiB (default 2: 4 GiB)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cases", default=",".join(SCHEDULERS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.out, a.data_dir, a.pairs)
        return 0
    dataset(a.data_dir, a.pairs)  # generate once, outside the timed children
    cases = a.cases.split(",")
    walls: dict[str, list[float]] = {c: [] for c in cases}
    tmp = Path(tempfile.mkdtemp(prefix="bench_scaling_", dir=a.data_dir))
    ref = tmp / "ref.zarr"
    same: dict[str, bool] = {}
    try:
        for r in range(a.repeat):
            for c in cases:
                out = ref if not ref.exists() else tmp / f"{c}.zarr"
                cmd = [sys.executable, __file__, "--child", c, "--out", str(out)]
                cmd += ["--data-dir", str(a.data_dir), "--pairs", str(a.pairs)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if res.returncode:
                    print(res.stderr, file=sys.stderr)
                    return 1
                wall = json.loads(res.stdout.strip().splitlines()[-1])["wall"]
                walls[c].append(wall)
                note = "reference"
                if out != ref:
                    ident = compare_stores(ref, out)
                    same[c] = same.get(c, True) and ident
                    note = "identical" if ident else "DIFFERENT"
                    shutil.rmtree(out)
                print(f"run {r + 1}: {c:8s} {wall:7.2f} s {note}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(walls[cases[0]])
    print(f"\n{a.pairs} pairs of 128x2048x2048 uint16 ({2 * a.pairs} GiB), repeat {a.repeat}")
    print("| scheduler | wall (median) | runs | vs threaded | output |")
    print("|---|---|---|---|---|")
    for c in cases:
        med = statistics.median(walls[c])
        runs = ", ".join(f"{w:.1f}" for w in walls[c])
        ident = (
            "reference"
            if c == cases[0] and c not in same
            else ("identical" if same.get(c) else "DIFFERENT")
        )
        print(f"| {LABELS.get(c, c)} | {med:.1f} s | {runs} | {med / base:.2f}x | {ident} |")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
