"""End-to-end: TIFF folders, schedulers, clusters, the native API, Zarr output, laziness."""

from __future__ import annotations

import collections

import dask
import numpy as np
import pytest
import tifffile
import zarr

from tests.oracles import oracle

cd = oracle("csbdeep.data", "csbdeep")
import caredask  # noqa: E402
import caredask.csbdeep as cc  # noqa: E402
from caredask.dataset.synthetic import write_tiff_pairs  # noqa: E402
from caredask.errors import AxesError, InputError, SourceNotFoundError  # noqa: E402
from caredask.loaders import tiff as tiff_loader  # noqa: E402

PATCH, K = (4, 16, 16), 6


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("pairs")
    write_tiff_pairs(base, 3, (12, 64, 48), seed=1)
    return base


@pytest.fixture(scope="module")
def reference(folder):
    np.random.seed(42)
    X, Y, axes = cd.create_patches(
        cd.RawData.from_folder(folder, ["low"], "GT", axes="ZYX"), PATCH, K, verbose=False
    )
    return X, Y, axes, np.random.get_state()


def ours(folder, **kw):
    np.random.seed(42)
    out = cc.create_patches(
        cc.RawData.from_folder(folder, ["low"], "GT", axes="ZYX"), PATCH, K, verbose=False, **kw
    )
    return (*out, np.random.get_state())


def same(a, b):
    assert a[2] == b[2]
    assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert np.array_equal(np.asarray(a[1]), np.asarray(b[1]))
    if len(a) > 3 and len(b) > 3:
        assert np.array_equal(a[3][1], b[3][1]) and a[3][2] == b[3][2]


def test_from_folder_matches_csbdeep_and_npz(folder, reference, tmp_path):
    got = ours(folder, save_file=tmp_path / "ours.npz")
    same(reference, got)
    np.random.seed(42)
    cd.create_patches(
        cd.RawData.from_folder(folder, ["low"], "GT", axes="ZYX"),
        PATCH,
        K,
        verbose=False,
        save_file=str(tmp_path / "ref.npz"),
    )
    a, b = np.load(tmp_path / "ours.npz"), np.load(tmp_path / "ref.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert np.array_equal(a[key], b[key]) and a[key].dtype == b[key].dtype


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
def test_scheduler_independent(folder, reference, scheduler):
    with dask.config.set(scheduler=scheduler):
        same(reference, ours(folder))


def test_distributed_cluster(folder, reference):
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        same(reference, ours(folder))


@pytest.mark.parametrize("chunks", [(1, 64, 48), (5, 13, 48), (12, 7, 9)])
def test_native_seed_independent_of_chunking(folder, reference, chunks):
    state = np.random.get_state()
    raw = caredask.RawData.from_sources(folder / "low", folder / "GT", axes="ZYX", chunks=chunks)
    # from_sources lists files naturally sorted; csbdeep lists them in directory order.
    order = [p.name for p in (folder / "low").glob("*.tif*")]
    assert sorted(order) == [f"img_{i:03d}.tif" for i in range(3)]
    X, Y, axes = caredask.generate_training_data(raw, PATCH, K, seed=42)
    assert np.array_equal(np.random.get_state()[1], state[1])  # global state untouched
    np.random.seed(42)
    raw_sorted = cd.RawData.from_arrays(
        [tifffile.imread(folder / "low" / f"img_{i:03d}.tif") for i in range(3)],
        [tifffile.imread(folder / "GT" / f"img_{i:03d}.tif") for i in range(3)],
        "ZYX",
    )
    rX, rY, raxes = cd.create_patches(raw_sorted, PATCH, K, verbose=False)
    assert axes == raxes and np.array_equal(X, rX) and np.array_equal(Y, rY)


def test_zarr_output_streams_and_matches(folder, reference, tmp_path):
    import zarr

    out = tmp_path / "train.zarr"
    X, Y, axes, _ = ours(folder, save_file=out)
    same(reference[:3], (X.compute(), Y.compute(), axes))
    g = zarr.open_group(out, mode="r")
    assert g.attrs["complete"] is True and g.attrs["axes"] == "SCZYX"
    rec = g.attrs["caredask"]
    assert rec["patch_size"] == list(PATCH) and len(rec["images"]) == 3
    starts, image = g["patch_start"][...], g["patch_image"][...]
    assert starts.shape == (3 * K, 3) and sorted(np.bincount(image)) == [K, K, K]
    (Xt, _Yt), _, axes_l = caredask.load_training_data(out, channel_last=False)
    assert axes_l == "SCZYX" and np.array_equal(Xt, reference[0])
    # The recorded coordinates are where the raw patches came from.
    row = 0
    y = tifffile.imread(folder / "GT" / sorted(p.name for p in (folder / "GT").iterdir())[0])
    assert y.shape == (12, 64, 48)
    s = starts[row]
    assert all(0 <= a and a + p <= d for a, p, d in zip(s, PATCH, (12, 64, 48), strict=True))
    with pytest.raises(InputError, match="overwrite"):
        caredask.generate_training_data(
            cc.RawData.from_folder(folder, ["low"], "GT", axes="ZYX"),
            PATCH,
            K,
            seed=1,
            save_file=out,
        )


def test_building_reads_nothing(folder, no_compute, monkeypatch):
    calls = collections.Counter()
    orig = tiff_loader._TiffReader.__getitem__

    def counting(self, key):
        calls[self.path] += 1
        return orig(self, key)

    monkeypatch.setattr(tiff_loader._TiffReader, "__getitem__", counting)
    raw = cc.RawData.from_folder(folder, ["low"], "GT", axes="ZYX")
    for x, y, _axes, _ in raw.generator():
        _ = (x[:, :8] + y[:, :8]).sum()  # graph building only
    assert sum(calls.values()) == 0


def test_patch_reads_touch_each_chunk_at_most_once(folder, monkeypatch):
    import caredask.sampling.pipeline as pipeline

    reads = collections.Counter()
    active = {"on": False}
    orig = tiff_loader._TiffReader.__getitem__

    def counting(self, key):
        if active["on"]:
            reads[(self.path, str(key))] += 1
        return orig(self, key)

    real_locate = pipeline._locate_centres

    def locate(items, job):  # every read after the centres are located is an extraction read
        real_locate(items, job)
        active["on"] = True

    monkeypatch.setattr(tiff_loader._TiffReader, "__getitem__", counting)
    monkeypatch.setattr(pipeline, "_locate_centres", locate)
    raw = cc.RawData.from_sources(folder / "low", folder / "GT", axes="ZYX", chunks=(3, 32, 48))
    # a budget too small to hold the pairs: every pass reads from the files
    caredask.generate_training_data(raw, PATCH, 3, seed=0, memory_budget=1)
    assert reads and max(reads.values()) == 1
    assert len(reads) < 2 * 3 * 8  # not every chunk of every image


@pytest.mark.parametrize(("fmt", "norm"), [("tiff", True), ("zarr", True), ("zarr", False)])
def test_pairs_that_fit_are_read_once(folder, tmp_path, monkeypatch, fmt, norm):
    import caredask.sampling.pipeline as pipeline

    low, gt = folder / "low", folder / "GT"
    if fmt == "zarr":  # a store that extraction and masks would otherwise read by region
        for sub in ("low", "GT"):
            (tmp_path / sub).mkdir()
            for f in sorted((folder / sub).glob("*.tif")):
                a = tifffile.imread(f)
                arr = zarr.create_array(
                    tmp_path / sub / f"{f.stem}.zarr", shape=a.shape, dtype=a.dtype,
                    chunks=(3, 32, 48),
                )  # fmt: skip
                arr[...] = a
        low, gt = tmp_path / "low", tmp_path / "GT"
    reads: collections.Counter[tuple[str, str]] = collections.Counter()
    cls = tiff_loader._TiffReader if fmt == "tiff" else zarr.Array
    orig = cls.__getitem__

    def counting(self, key):
        reads[(str(getattr(self, "path", None) or self.store_path), str(key))] += 1
        return orig(self, key)

    def run(**kw):
        raw = cc.RawData.from_sources(low, gt, axes="ZYX", chunks=(3, 32, 48))
        if not norm:  # the statistics pass reads only the target (for the filter)
            kw["normalization"] = None
        return caredask.generate_training_data(raw, PATCH, 3, seed=0, **kw)

    per_pass = run(memory_budget=1)
    held = []
    real = pipeline._process_lazy

    def spy(items, job, channel, sink, read_once):
        held.append(read_once)
        return real(items, job, channel, sink, read_once)

    monkeypatch.setattr(pipeline, "_process_lazy", spy)
    monkeypatch.setattr(cls, "__getitem__", counting)
    once = run()
    assert held and all(held)
    assert reads and max(reads.values()) == 1  # each chunk decoded once, for all passes
    targets = sum(1 for path, _ in reads if "GT" in path)
    assert targets == 3 * 8  # every chunk of every target (3 pairs of 8 chunks)
    if norm:
        assert len(reads) == 2 * 3 * 8  # and of every source
    else:  # the source is read by extraction only: the chunks its patches touch
        assert len(reads) - targets < 3 * 8
    for a, b in zip(per_pass, once, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_errors(folder, tmp_path):
    (tmp_path / "low").mkdir()
    (tmp_path / "GT").mkdir()
    with pytest.raises(SourceNotFoundError, match="Didn't find any images"):
        cc.RawData.from_folder(tmp_path, ["low"], "GT", axes="YX")
    tifffile.imwrite(tmp_path / "low" / "a.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(SourceNotFoundError, match=r"GT/a\.tif: target image missing"):
        cc.RawData.from_folder(tmp_path, ["low"], "GT", axes="YX")
    (tmp_path / "low" / "dir.tif").mkdir()
    tifffile.imwrite(tmp_path / "GT" / "a.tif", np.zeros((8, 8), np.uint16))
    (tmp_path / "GT" / "dir.tif").mkdir()
    with pytest.raises(InputError, match="matches a directory"):
        cc.RawData.from_folder(tmp_path, ["low"], "GT", axes="YX")
    with pytest.raises(InputError, match="3 source images but 2 target"):
        cc.RawData.from_arrays([np.zeros((4, 4))] * 3, [np.zeros((4, 4))] * 2, "YX")
    with pytest.raises(InputError, match="no images given"):
        cc.RawData.from_arrays([], [], "YX")
    raw = cc.RawData.from_arrays([np.ones((8, 8))], [np.ones((8, 8))], "YX")
    with pytest.raises(InputError, match="larger than data shape"):
        cc.create_patches(raw, (16, 4), 2, verbose=False, patch_filter=None)
    with pytest.raises(AxesError, match="must be of length 3"):
        cc.create_patches(raw, (4, 4, 4), 2, verbose=False)
    short = cc.RawData(lambda: iter([(np.ones((8, 8)), np.ones((8, 8)), "YX", None)]), 2, "x")
    with pytest.raises(InputError, match="fewer than its size 2"):
        cc.create_patches(short, (4, 4), 2, verbose=False, patch_filter=None)
    with pytest.raises(InputError, match="no images"):
        cc.create_patches(cc.RawData(lambda: iter([]), 0, "empty"), (4, 4), 2, verbose=False)
    long = cc.RawData(lambda: iter([(np.ones((8, 8)), np.ones((8, 8)), "YX", None)] * 2), 1, "x")
    with pytest.warns(UserWarning, match="skipping excess images"):
        cc.create_patches(long, (4, 4), 2, verbose=False, patch_filter=None)
