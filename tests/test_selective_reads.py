"""Extraction reads only the store cells (inner chunks of shards) that patches touch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
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
        memory_budget=1,  # too small to hold the target: extraction reads from the store
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


def sparse_pair(rs, shape):
    y = np.zeros(shape, np.uint16)
    for _ in range(2):
        c = [rs.randint(0, s - 4) for s in shape]
        y[tuple(slice(a, a + 4) for a in c)] = rs.randint(500, 3000)
    x = (y // 2 + rs.randint(0, 30, shape)).astype(np.uint16)
    return x, y


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([(4, 8, 8), (1, 6, 6), (3, 5, 9)]))
def test_mask_pass_skips_background_blocks_exactly_as_csbdeep(seed, patch):
    import csbdeep.data as cd
    import dask.array as da

    rs = np.random.RandomState(seed)
    x, y = sparse_pair(rs, (12, 60, 60))
    chunks = tuple(int(rs.randint(max(2, s // 6), s // 2 + 1)) for s in y.shape)
    np.random.seed(seed % 1000)
    try:
        ref = cd.create_patches(cd.RawData.from_arrays([x], [y], "ZYX"), patch, 5, verbose=False)
    except ValueError:
        return  # no eligible region (covered by the equivalence tests)
    np.random.seed(seed % 1000)
    xd, yd = da.from_array(x, chunks=chunks), da.from_array(y, chunks=chunks)
    out = caredask.csbdeep.create_patches(
        RawData.from_arrays([xd], [yd], "ZYX"), patch, 5, verbose=False
    )
    assert np.array_equal(ref[0], out[0]) and np.array_equal(ref[1], out[1])


def test_mask_pass_rereads_only_blocks_near_foreground(tmp_path):
    rs = np.random.RandomState(0)
    y = np.zeros((32, 512, 512), np.uint16)
    y[8:20, 30:90, 40:120] = rs.randint(500, 3000, (12, 60, 80))
    x = (y // 2 + rs.randint(0, 30, y.shape)).astype(np.uint16)
    src, tgt = tmp_path / "x.zarr", tmp_path / "y.zarr"
    for path, a in ((src, x), (tgt, y)):
        zarr.create_array(path, shape=a.shape, dtype=a.dtype, chunks=(8, 64, 64))[...] = a
    reads = []
    real = zarr.Array.__getitem__
    import caredask.sampling.pipeline as pipeline

    phase = {"now": "stats"}
    real_locate = pipeline._locate_centres

    def locate(items, job):
        phase["now"] = "mask"
        real_locate(items, job)
        phase["now"] = "extract"

    def counting(self, key):
        reads.append((phase["now"], str(self.store_path).endswith("y.zarr")))
        return real(self, key)

    out = tmp_path / "o.zarr"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_locate_centres", locate)
        mp.setattr(zarr.Array, "__getitem__", counting)
        caredask.generate_training_data(
            RawData.from_sources(str(src), str(tgt), axes="ZYX"),
            (4, 16, 16),
            20,
            seed=1,
            save_file=out,
            memory_budget=1,  # too small to hold the pair: the mask pass reads the store
        )
    blocks = 4 * 8 * 8
    assert reads.count(("stats", True)) == blocks  # block maxima share the statistics reads
    # plain chunks (one store cell per block): map_overlap reads the 4 x 4 x 4 blocks around
    # the object once each
    assert reads.count(("mask", True)) == 64
    images = zarr.open_group(out).attrs["caredask"]["images"]
    assert images[0]["mask_reread"] == 64 / blocks


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10**6),
    st.sampled_from([(4, 8, 8), (1, 6, 6), (3, 16, 16)]),
    st.sampled_from([(2, 8, 8), (4, 16, 16), (1, 5, 7)]),
)
def test_region_mask_equals_map_overlap_mask(seed, patch, grid):
    """The mask read by region (block + halo from the store) is map_overlap's, block for block."""
    import dask.array as da

    from caredask.loaders.base import RegionSource
    from caredask.masks.background import dilate_above_mask
    from caredask.masks.skip import dilate_above_regions

    rs = np.random.RandomState(seed)
    _, y = sparse_pair(rs, (12, 60, 60))
    chunks = tuple(int(rs.randint(max(2, s // 4), s + 1)) for s in y.shape)
    yd = da.from_array(y, chunks=chunks)
    thr = np.float32(rs.choice([0, 200, 1000]))
    live = np.ones(yd.numblocks, bool)
    live.flat[rs.randint(0, live.size)] = False
    got, _ = dilate_above_regions(yd, RegionSource(y, grid), thr, patch, live)
    want = dilate_above_mask(yd, thr, patch).compute()
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in yd.chunks]
    for idx in np.ndindex(*live.shape):
        if not live[idx]:
            sl = tuple(slice(b[i], b[i + 1]) for b, i in zip(bounds, idx, strict=True))
            want[sl] = False
    assert np.array_equal(got.compute(), want)


def test_a_task_fetches_each_shard_index_once(tmp_path):
    """Reading many inner chunks of a shard in one task fetches the shard's index once."""
    from zarr.abc.store import SuffixByteRequest
    from zarr.storage import LocalStore, WrapperStore

    from caredask.loaders.guarded import ZarrChunkReader
    from caredask.sampling.extract import read_pieces

    suffix_reads: list[str] = []

    class Counting(WrapperStore):
        async def get(self, key, prototype, byte_range=None):
            if isinstance(byte_range, SuffixByteRequest):
                suffix_reads.append(key)
            return await super().get(key, prototype, byte_range)

    data = np.arange(8 * 32 * 32, dtype=np.uint16).reshape(8, 32, 32)
    zarr.create_array(tmp_path / "s.zarr", data=data, chunks=(4, 16, 16), shards=(8, 32, 32))
    arr = zarr.open_array(Counting(LocalStore(tmp_path / "s.zarr")), mode="r")
    reader = ZarrChunkReader(arr, "s.zarr")
    cuts = [
        tuple(slice(a, a + 2) for a in (z, y, x)) for z in (0, 4) for y in (0, 16) for x in (0, 16)
    ]
    pieces = read_pieces(reader, (4, 16, 16), (0, 0, 0), (8, 32, 32), cuts)
    assert all(np.array_equal(p, data[c]) for p, c in zip(pieces, cuts, strict=True))
    assert suffix_reads == ["c/0/0/0"]  # 8 inner chunks read, one index fetch
    suffix_reads.clear()
    for c in cuts:  # without the task's cache: one index fetch per inner chunk
        reader[c]
    assert len(suffix_reads) == 8
