#!/usr/bin/env python
"""Selective reads: bytes of touched chunks vs bytes caredask reads; zarrs vs zarr-python.

A synthetic uint16 image (default 128x2048x4096 = 2 GiB) is written twice: ``plain`` (chunks
64x256x256) and ``sharded`` (shards 64x512x512 of 16x64x64 inner chunks, made from the plain
store by ``caredask.writers.convert.convert_to_zarr``, whose time is reported as the
conversion cost).  Both are zstd-compressed zarr v3 (zarr's default codec).

Extraction: ``caredask.generate_training_data(raw, (16, 64, 64), N, patch_filter=None,
normalization=None)`` on the pair (source = the store, target = a symlink to it, so both are
read and counted separately), with each array opened on :class:`CountingStore` (a
``zarr.storage.WrapperStore`` counting every byte and request that reaches the local store)
and read with zarr-python's codec pipeline (the Rust ``zarrs`` pipeline reads files itself,
past any Python store wrapper).  The pixel values encode their position (rows alternate x,
4096 + y and 8192 + z, times 4, plus 2 noise bits), so the patch positions are decoded from
the patches themselves: touched bytes are the stored sizes (chunk files, or the shard index
entries of inner chunks) of every chunk a patch overlaps.  read/touched 1.00 means caredask
reads exactly what the patches need.

Raw read: ``open_images(store)[0].data.sum()`` with the threads scheduler, with zarr-python's
pipeline and with ``zarrs``, same store, same run; the ratio is the speed-up.

Example::

    python benchmarks/bench_reads.py                     # 2 GiB, N = 100, 1000, 10000
    python benchmarks/bench_reads.py --shape 64,1024,1024 --n 100,1000   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import tempfile
import threading
import time
from itertools import product
from pathlib import Path
from typing import Any, cast

import dask
import dask.array as da
import numpy as np
import zarr
import zarr.storage
from zarr.abc.store import ByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

import caredask
from caredask.loaders import open_images, reader_to_dask
from caredask.loaders.codecs import use_zarrs, zarrs_available
from caredask.loaders.guarded import ZarrChunkReader
from caredask.writers.convert import convert_to_zarr

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20
PATCH = (16, 64, 64)
PLAIN_CHUNKS = (64, 256, 256)
SHARDS, INNER = (64, 512, 512), (16, 64, 64)


class CountingStore(zarr.storage.WrapperStore[zarr.storage.LocalStore]):
    """A store wrapper counting the bytes and requests of every read of pixel data."""

    def __init__(self, store: zarr.storage.LocalStore) -> None:
        super().__init__(store)
        self.lock = threading.Lock()
        self.reset()

    def _with_store(self, store: zarr.storage.LocalStore) -> CountingStore:
        return self  # share the counters with views zarr derives

    def reset(self) -> None:
        with self.lock:
            self.bytes = 0
            self.requests = 0
            self.index_bytes = 0  # shard indexes (suffix requests)

    def _count(self, key: str, buf: Buffer | None, byte_range: ByteRequest | None) -> None:
        if buf is not None and not key.endswith("zarr.json"):
            with self.lock:
                self.bytes += len(buf)
                self.requests += 1
                if isinstance(byte_range, SuffixByteRequest):
                    self.index_bytes += len(buf)

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        buf = await self._store.get(key, prototype, byte_range)
        self._count(key, buf, byte_range)
        return buf

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Any
    ) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        out = await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))
        return list(out)


# --------------------------------------------------------------------------- data


def _encode_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
    """Pixel values that encode their own position (see the module docstring)."""
    (z0, _), (y0, _), (x0, _) = block_info[None]["array-location"]
    z, y, x = np.ogrid[z0 : z0 + block.shape[0], y0 : y0 + block.shape[1], x0 : x0 + block.shape[2]]
    code = np.where(y % 3 == 0, x, np.where(y % 3 == 1, 4096 + y, 8192 + z))
    noise = ((z * 73856093) ^ (y * 19349663) ^ (x * 83492791)) & 3
    return (code * 4 + noise).astype(np.uint16)


def decode_starts(X: Any) -> np.ndarray:
    """Patch start positions (z, y, x) from patches of the encoded image."""
    corner = np.asarray(X[:, 0, 0, 0:3, 0]).astype(np.int64) // 4  # (N, 3 rows)
    starts = np.zeros((corner.shape[0], 3), np.int64)
    for r in range(3):
        v = corner[:, r]
        xs, ys, zs = v < 4096, (v >= 4096) & (v < 8192), v >= 8192
        starts[xs, 2] = v[xs]
        starts[ys, 1] = v[ys] - 4096 - r
        starts[zs, 0] = v[zs] - 8192
    return starts


def ensure_data(data_dir: Path, shape: tuple[int, ...]) -> tuple[Path, Path, float]:
    """Plain and sharded stores (reused when a stamp matches); conversion time in s."""
    stamp = data_dir / "stamp.json"
    want = {"shape": shape, "plain": PLAIN_CHUNKS, "shards": SHARDS, "inner": INNER}
    plain, sharded = data_dir / "plain.zarr", data_dir / "sharded.zarr"
    if stamp.exists() and json.loads(stamp.read_text()).get("params") == json.loads(
        json.dumps(want)
    ):
        return plain, sharded, json.loads(stamp.read_text())["convert_s"]
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    img = da.zeros(shape, np.uint16, chunks=PLAIN_CHUNKS).map_blocks(_encode_block, dtype=np.uint16)
    arr = zarr.create_array(
        plain, shape=shape, dtype="uint16", chunks=PLAIN_CHUNKS, dimension_names=("z", "y", "x")
    )
    da.store(img, arr, lock=False)
    t0 = time.perf_counter()
    convert_to_zarr(str(plain), sharded, inner_chunks=INNER, shard_shape=SHARDS)
    convert_s = time.perf_counter() - t0
    stamp.write_text(json.dumps({"params": want, "convert_s": convert_s}))
    return plain, sharded, convert_s


def _array_path(store: Path) -> Path:
    return store / "0" if (store / "0" / "zarr.json").exists() else store


# --------------------------------------------------------------------------- stored sizes


def stored_sizes(store: Path) -> np.ndarray:
    """Compressed size of every stored (inner) chunk, indexed by its chunk grid position."""
    arr = zarr.open_array(zarr.storage.LocalStore(_array_path(store), read_only=True))
    root = _array_path(store)
    inner = tuple(arr.chunks)
    grid = tuple(math.ceil(s / c) for s, c in zip(arr.shape, inner, strict=True))
    sizes = np.zeros(grid, np.int64)
    if arr.shards is None:
        for idx in product(*(range(g) for g in grid)):
            f = root / "c" / "/".join(map(str, idx))
            sizes[idx] = f.stat().st_size if f.exists() else 0
        return sizes
    per = tuple(s // c for s, c in zip(arr.shards, inner, strict=True))
    sgrid = tuple(math.ceil(s / c) for s, c in zip(arr.shape, arr.shards, strict=True))
    n = math.prod(per)
    for sidx in product(*(range(g) for g in sgrid)):
        f = root / "c" / "/".join(map(str, sidx))
        if not f.exists():
            continue
        with open(f, "rb") as fh:
            fh.seek(-(16 * n + 4), os.SEEK_END)
            index = np.frombuffer(fh.read(16 * n), "<u8").reshape((*per, 2))
        nbytes = np.where(index[..., 0] == np.iinfo(np.uint64).max, 0, index[..., 1])
        sl = tuple(slice(i * p, i * p + p) for i, p in zip(sidx, per, strict=True))
        view = sizes[sl]
        view[...] = nbytes[tuple(slice(0, v) for v in view.shape)].astype(np.int64)
    return sizes


def touched_bytes(starts: np.ndarray, chunks: tuple[int, ...], sizes: np.ndarray) -> int:
    """Stored bytes of the chunks that patches starting at ``starts`` overlap."""
    hit = np.zeros(sizes.shape, bool)
    lo = starts // np.array(chunks)
    hi = (starts + np.array(PATCH) - 1) // np.array(chunks)
    for a, b in zip(lo, hi, strict=True):
        hit[a[0] : b[0] + 1, a[1] : b[1] + 1, a[2] : b[2] + 1] = True
    return int(sizes[hit].sum())


# --------------------------------------------------------------------------- runs


def _counting_array(path: Path) -> tuple[zarr.Array, CountingStore]:
    store = CountingStore(zarr.storage.LocalStore(path, read_only=True))
    with use_zarrs(False):
        arr = zarr.open_array(store, mode="r")
    return arr, store


def extraction(store: Path, link: Path, n: int) -> dict[str, Any]:
    """One generate_training_data run on (store, link): read bytes, patch starts, time.

    The patches stay in memory (N=10000: 2 x 2.5 GiB of float32).
    """
    (x, cx), (y, cy) = _counting_array(_array_path(store)), _counting_array(_array_path(link))
    unit = tuple(x.shards or x.chunks)
    # As the Zarr loader wraps arrays (a ZarrChunkReader, registered by reader_to_dask with
    # its read grid, which extraction uses to read only the touched inner chunks, fetching
    # each shard index once per task), with counting stores.
    rx, ry = ZarrChunkReader(x, str(store)), ZarrChunkReader(y, str(link))
    xd = reader_to_dask(cast(Any, rx), unit, (str(store), "counting"), prefix="read-zarr")
    yd = reader_to_dask(cast(Any, ry), unit, (str(link), "counting"), prefix="read-zarr")
    raw = caredask.RawData.from_sources([xd], [yd], axes="ZYX")
    cx.reset(), cy.reset()
    t0 = time.perf_counter()
    X, _, _ = caredask.generate_training_data(
        raw,
        PATCH,
        n,
        seed=0,
        patch_filter=None,
        normalization=None,
        shuffle=False,
    )
    dt = time.perf_counter() - t0
    starts = decode_starts(X)
    del X
    return {
        "index": cx.index_bytes + cy.index_bytes,
        "read": cx.bytes + cy.bytes,
        "requests": cx.requests + cy.requests,
        "s": dt,
        "starts": starts,
    }


def raw_read(store: Path, zarrs: bool) -> float:
    with use_zarrs(zarrs):
        (img,) = open_images(str(store))
    t0 = time.perf_counter()
    img.data.sum(dtype=np.uint64).compute()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="128,2048,4096", help="image shape Z,Y,X (uint16)")
    ap.add_argument("--n", default="100,1000,10000", help="patch counts")
    ap.add_argument("--data-dir", default=str(ROOT / "benchmarks" / "data" / "reads"))
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    assert shape[1] < 4096 and shape[2] <= 4096, "position encoding needs Y < 4096, X <= 4096"
    dask.config.set(scheduler="threads")
    data_dir = Path(args.data_dir) / "x".join(map(str, shape))
    t0 = time.perf_counter()
    plain, sharded, convert_s = ensure_data(data_dir, shape)
    gib = math.prod(shape) * 2 / 2**30
    print(
        f"image {shape} uint16 = {gib:.2f} GiB; data ready in {time.perf_counter() - t0:.0f} s;"
        f" conversion plain -> sharded took {convert_s:.1f} s"
    )
    rows = []
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        for name, store, chunks in (("plain", plain, PLAIN_CHUNKS), ("sharded", sharded, INNER)):
            sizes = stored_sizes(store)
            link = Path(tmp) / f"{name}-target.zarr"
            link.symlink_to(store)
            total = 2 * int(sizes.sum())
            for n in (int(v) for v in args.n.split(",")):
                r = extraction(store, link, n)
                touched = 2 * touched_bytes(r["starts"], chunks, sizes)
                rows.append(
                    (
                        name,
                        n,
                        touched / total,
                        r["read"] / total,
                        r["read"] / max(touched, 1),
                        (r["read"] - r["index"]) / max(touched, 1),
                        r["requests"],
                        r["s"],
                    )
                )
                print(f"  {name} N={n}: read/touched {rows[-1][4]:.2f}, {r['s']:.1f} s", flush=True)
    head = "touched / image | read / image | read / touched | without shard indexes"
    print(f"\n| store | N | {head} | requests | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, t, rd, ratio, noidx, req, s in rows:
        print(
            f"| {name} | {n} | {t:.1%} | {rd:.1%} | {ratio:.2f} | {noidx:.2f} | {req} | {s:.1f} |"
        )
    print("\nraw read + decode of the whole store (img.data.sum(), threads):")
    print("| store | zarr-python (MiB/s) | zarrs (MiB/s) | zarrs speed-up |")
    print("|---|---|---|---|")
    for name, store in (("plain", plain), ("sharded", sharded)):
        slow = raw_read(store, False)
        fast = raw_read(store, True) if zarrs_available() else float("nan")
        mib = gib * 1024
        print(f"| {name} | {mib / slow:.0f} | {mib / fast:.0f} | {slow / fast:.2f}x |")


if __name__ == "__main__":
    main()
