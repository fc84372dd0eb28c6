"""Extraction reads only the store cells (inner chunks of shards) that patches touch."""

from __future__ import annotations

import itertools

import numpy as np
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import caredask
from caredask.csbdeep import RawData
from caredask.sampling.extract import read_pieces, touched_cells

PATCH, K = (4, 16, 16), 12
GRID = (4, 16, 16)  # inner chunks


def sharded(tmp_path, name, data):
    arr = zarr.create_array(
        tmp_path / name, shape=data.shape, dtype=data.dtype, chunks=(4, 16, 16), shards=(8, 32, 32)
    )
    arr[...] = data
    return tmp_path / name


def images(seed=0):
    rs = np.random.RandomState(seed)
    y = ((rs.rand(16, 96, 96) > 0.6) * rs.randint(100, 3000, (16, 96, 96))).astype(np.uint16)
    x = (y // 2 + rs.randint(0, 50, y.shape)).astype(np.uint16)
    return x, y


def test_sharded_extraction_reads_touched_inner_chunks_only(tmp_path, monkeypatch):
    x, y = images()
    src, tgt = sharded(tmp_path, "x.zarr", x), sharded(tmp_path, "y.zarr", y)
    ref = caredask.generate_training_data(
        RawData.from_arrays([x], [y], axes="ZYX"), PATCH, K, seed=7, normalization=None
    )
    reads = []
    real = zarr.Array.__getitem__

    def counting(self, key):
        if self.shards is not None and isinstance(key, tuple):
            reads.append((str(self.store_path), key))
        return real(self, key)

    monkeypatch.setattr(zarr.Array, "__getitem__", counting)
    out = tmp_path / "o.zarr"
    got = caredask.generate_training_data(
        RawData.from_sources(str(src), str(tgt), axes="ZYX"),
        PATCH,
        K,
        seed=7,
        normalization=None,
        save_file=out,
    )
    assert np.array_equal(ref[0], got[0].compute()) and np.array_equal(ref[1], got[1].compute())
    starts = np.asarray(zarr.open_group(out)["patch_start"][...])
    touched = set()
    for s in starts:
        ranges = [
            range(a // g, (a + p - 1) // g + 1) for a, p, g in zip(s, PATCH, GRID, strict=True)
        ]
        touched.update(itertools.product(*ranges))
    extraction = [
        k for _, k in reads if all(sl.stop - sl.start <= g for sl, g in zip(k, GRID, strict=True))
    ]
    cells = {tuple(sl.start // g for sl, g in zip(k, GRID, strict=True)) for k in extraction}
    assert cells == touched  # every touched inner chunk, nothing else
    assert len(extraction) == 2 * len(touched)  # once for the source, once for the target


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=2, max_size=2),
    st.lists(st.integers(0, 40), min_size=4, max_size=4),
)
def test_read_pieces_equals_cut_of_the_chunk(grid, corners):
    data = np.arange(48 * 40).reshape(48, 40)
    origin, shape = (8, 4), (30, 33)
    chunk = data[8:38, 4:37]
    a0, b0, a1, b1 = corners
    local = [
        (slice(min(a0, 29), min(a0, 29) + 1), slice(min(b0, 20), min(b0, 20) + 12)),
        (slice(min(a1, 20), 30), slice(min(b1, 32), 33)),
    ]
    got = read_pieces(data, grid, origin, shape, local)
    for piece, sl in zip(got, local, strict=True):
        assert np.array_equal(piece, chunk[sl])
    cells = touched_cells(local, origin, grid)
    assert len(cells) == len(set(cells))
