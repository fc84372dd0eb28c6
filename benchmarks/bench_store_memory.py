"""Peak memory of reading a training store: ``TrainingStore`` iteration vs ``load_training_data``.

Writes a Zarr training data store of ``--patches`` patches (``X`` and ``Y``, float32
``1x16x64x64`` each, 256 KiB per array per patch) into a temporary folder, then measures the
peak of numpy/Python allocations (``tracemalloc``; numpy reports its buffers to it) while

* iterating ``caredask.TrainingStore`` patch by patch (what a PyTorch map-style dataset does),
* iterating ``TrainingStore`` in slices of ``--batch`` patches, and
* ``caredask.load_training_data`` (the reference: everything in memory, as csbdeep does).

It prints each peak and the ratio to the store's size and to ``load_training_data``'s peak.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from caredask import TrainingStore, load_training_data
from caredask.writers.zarr_store import TrainingDataWriter

PATCH = (1, 16, 64, 64)


def _write(path: Path, n: int) -> int:
    rng = np.random.default_rng(0)
    with TrainingDataWriter(path, n, PATCH, PATCH, "SCZYX") as w:
        for start in range(0, n, 64):
            rows = np.arange(start, min(n, start + 64))
            data = rng.random((rows.size, *PATCH), dtype=np.float32)
            w.write(rows, data, data + 1)
    return 2 * n * int(np.prod(PATCH)) * 4


def _peak(fn: Callable[[], Any]) -> tuple[int, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patches", type=int, default=1024, help="patches in the store")
    ap.add_argument("--batch", type=int, default=32, help="slice length for batched reads")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.zarr"
        size = _write(path, args.patches)

        def one_by_one() -> None:
            store = TrainingStore(path)
            total = 0.0
            for x, y in store:
                total += float(x[0, 0, 0, 0]) + float(y[0, 0, 0, 0])

        def batched() -> None:
            store = TrainingStore(path)
            for i in range(0, len(store), args.batch):
                x, _ = store[i : i + args.batch]
                assert len(x) <= args.batch

        def everything() -> None:
            (X, _), _, _ = load_training_data(path)
            assert len(X) == args.patches

        print(f"store: {args.patches} patches, X+Y {size / 2**20:.0f} MiB")
        ref, ref_t = _peak(everything)
        for name, fn in (("TrainingStore[i]", one_by_one), ("TrainingStore[i:j]", batched)):
            peak, dt = _peak(fn)
            print(
                f"{name:20s} peak {peak / 2**20:8.2f} MiB = {peak / size:.4f} x store, "
                f"{peak / ref:.4f} x load_training_data; {dt:.2f} s"
            )
        print(f"{'load_training_data':20s} peak {ref / 2**20:8.2f} MiB = {ref / size:.4f} x store; "
              f"{ref_t:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
