"""The measuring parts of benchmarks/bench_reads.py: byte counts, stored sizes, decoded starts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import dask.array as da
import numpy as np
import pytest
import zarr

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_reads", ROOT / "benchmarks" / "bench_reads.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_reads"] = mod
    spec.loader.exec_module(mod)
    return mod


def _encoded(bench: ModuleType, shape: tuple[int, ...]) -> np.ndarray:
    img = da.zeros(shape, np.uint16, chunks=(16, 64, 64)).map_blocks(
        bench._encode_block, dtype=np.uint16
    )
    return np.asarray(img.compute())


@pytest.mark.parametrize("sharded", [False, True])
def test_counts_match_stored_sizes(tmp_path: Path, bench: ModuleType, sharded: bool) -> None:
    data = _encoded(bench, (32, 128, 192))
    kw = {"shards": (32, 128, 128)} if sharded else {}
    zarr.create_array(tmp_path / "s.zarr", data=data, chunks=(16, 64, 64), **kw)
    sizes = bench.stored_sizes(tmp_path / "s.zarr")
    assert sizes.shape == (2, 2, 3) and (sizes > 0).all()
    files = [f for f in (tmp_path / "s.zarr" / "c").rglob("*") if f.is_file()]
    index = 2 * (16 * 8 + 4) if sharded else 0  # 2 shards of 8 inner chunks each
    assert sum(f.stat().st_size for f in files) == sizes.sum() + index
    arr, store = bench._counting_array(tmp_path / "s.zarr")
    assert np.array_equal(arr[:], data)
    assert store.bytes == sizes.sum() + index
    store.reset()
    arr[0:4, 0:10, 70:80]  # inside chunk (0, 0, 1)
    assert store.bytes >= sizes[0, 0, 1] and store.bytes <= sizes[0, 0, 1] + (2 * 16 * 8 + 4)
    starts = np.array([[0, 0, 64], [16, 60, 0]])
    assert (
        bench.touched_bytes(starts, (16, 64, 64), sizes)
        == sizes[0, 0, 1] + sizes[1, 0:2, 0].sum()  # y 60..123: 2 chunks, x 0..63: one
    )


def test_decode_starts(bench: ModuleType) -> None:
    data = _encoded(bench, (40, 200, 300))
    rs = np.random.RandomState(0)
    starts = np.stack(
        [rs.randint(0, s - p, 50) for s, p in zip(data.shape, bench.PATCH, strict=True)], 1
    )
    X = np.stack([data[z : z + 16, y : y + 64, x : x + 64] for z, y, x in starts])[:, None]
    assert np.array_equal(bench.decode_starts(X.astype(np.float32)), starts)
