"""Terabyte-job machinery: batches in flight, workers writing, progress, resume, faults."""

from __future__ import annotations

import os
import signal
import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

import caredask
import caredask.sampling.pipeline as pipeline
from caredask.csbdeep import RawData
from caredask.errors import InputError
from caredask.sampling.progress import Progress
from caredask.sampling.sinks import ZarrSink

PATCH, K = (4, 16, 16), 8


def _block(block_id: tuple[int, ...], shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Deterministic CARE-like content of one block (a virtual image, never stored)."""
    rs = np.random.RandomState([seed, *block_id])
    y = (rs.rand(*shape) > 0.7) * rs.randint(200, 4000, shape)
    return y.astype(np.uint16)


def virtual(shape, chunks, seed):
    def make(block_info=None):
        info = block_info[None]
        return _block(tuple(info["chunk-location"]), info["chunk-shape"], seed)

    return da.map_blocks(make, chunks=da.core.normalize_chunks(chunks, shape), dtype=np.uint16)


def pairs(n, shape=(8, 64, 64), chunks=(4, 32, 32)):
    ys = [virtual(shape, chunks, 10 + i) for i in range(n)]
    xs = [
        (y // 3 + virtual(shape, chunks, 100 + i) // 8).astype(np.uint16) for i, y in enumerate(ys)
    ]
    return xs, ys


def raw(n=4, **kw):
    xs, ys = pairs(n, **kw)
    return RawData.from_arrays(xs, ys, axes="ZYX")


def arrays(path):
    g = zarr.open_group(path, mode="r")
    return {k: np.asarray(g[k][...]) for k in ("X", "Y", "patch_start", "patch_image")}, dict(
        g.attrs
    )


def same_store(a, b):
    (xa, attrs_a), (xb, attrs_b) = arrays(a), arrays(b)
    for k in xa:
        assert np.array_equal(xa[k], xb[k]), k
    assert attrs_a["caredask"]["images"] == attrs_b["caredask"]["images"]


def one_per_batch(monkeypatch):
    monkeypatch.setattr(pipeline, "batches", lambda items, job: ([it] for it in items))


def test_zarr_output_equals_memory_and_client_gets_no_patches(tmp_path, monkeypatch):
    seen = []
    real = ZarrSink.accept

    def spy(self, item, results):
        seen.extend(type(r) for r in results)
        return real(self, item, results)

    monkeypatch.setattr(ZarrSink, "accept", spy)
    X, Y, axes = caredask.generate_training_data(raw(), PATCH, K, seed=3)
    Xz, Yz, axes_z = caredask.generate_training_data(
        raw(), PATCH, K, seed=3, save_file=tmp_path / "t.zarr"
    )
    assert seen and set(seen) == {int}  # workers wrote; only row counts came back
    assert axes == axes_z and isinstance(Xz, da.Array)
    assert np.array_equal(X, Xz.compute()) and np.array_equal(Y, Yz.compute())


@pytest.mark.parametrize("budget", [1, "64MiB", None])
def test_budget_does_not_change_the_result(budget, monkeypatch):
    one_per_batch(monkeypatch)
    ref = caredask.generate_training_data(raw(), PATCH, K, seed=5, memory_budget="8GiB")
    got = caredask.generate_training_data(raw(), PATCH, K, seed=5, memory_budget=budget)
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])


def test_bad_budget_is_refused():
    with pytest.raises(InputError, match=r"memory budget 'lots' is not a positive size"):
        caredask.generate_training_data(raw(1), PATCH, K, seed=0, memory_budget="lots")


def test_progress_counts_chunks_of_every_pass():
    snaps = []
    prog = Progress(0, enabled=False, interval=0, on_update=snaps.append)
    caredask.generate_training_data(
        raw(1, shape=(16, 128, 128), chunks=(4, 32, 32)), PATCH, K, seed=0, progress=prog
    )
    last = prog.snapshot()
    assert last["images"] == (1, 1)
    for phase in ("statistics", "mask", "extract"):
        done, total = last[phase]
        assert 0 < done == total, phase
    assert last["statistics"][1] >= 2 * 64  # one histogram task per chunk of source and target
    assert last["mask"][1] >= 64  # (at least) one mask task per target chunk
    done = [sum(s[p][0] for p in ("statistics", "mask", "extract")) for s in snaps]
    assert len(snaps) > 100 and done == sorted(done)  # updates within the single image


def test_progress_lines_when_not_a_terminal(capsys):
    import io

    out = io.StringIO()
    prog = Progress(2, 10, file=out, interval=0)
    prog.advance({"statistics": 3})
    prog.image_done()
    prog.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("caredask:") and "statistics 3/0" in lines[0]
    assert "images 1/2" in lines[-1]


def _interrupt_at(monkeypatch, index):
    real = pipeline._process_lazy

    def failing(items, *args):
        if any(it.index == index for it in items):
            raise KeyboardInterrupt
        return real(items, *args)

    monkeypatch.setattr(pipeline, "_process_lazy", failing)


def test_resume_after_interruption_gives_the_same_store(tmp_path, monkeypatch):
    one_per_batch(monkeypatch)
    # memory_budget=1: one batch at a time, each read per pass (as big images are), so that
    # the per-image records (mask_reread) are those of the same reads in every run
    ref = tmp_path / "ref.zarr"
    caredask.generate_training_data(raw(), PATCH, K, seed=1, save_file=ref, memory_budget=1)
    out = tmp_path / "out.zarr"
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        caredask.generate_training_data(raw(), PATCH, K, seed=1, save_file=out, memory_budget=1)
    partial = tmp_path / "out.zarr.partial"
    assert not out.exists() and partial.is_dir()
    assert sorted(zarr.open_group(partial)["progress"].group_keys()) == ["0", "1"]
    monkeypatch.undo()
    one_per_batch(monkeypatch)
    processed = []
    real = pipeline._process_lazy

    def spy(items, *args):
        processed.extend(it.index for it in items)
        return real(items, *args)

    monkeypatch.setattr(pipeline, "_process_lazy", spy)
    caredask.generate_training_data(raw(), PATCH, K, seed=1, save_file=out, memory_budget=1)
    assert sorted(processed) == [2, 3]  # images 0 and 1 were not read again
    assert not partial.exists()
    same_store(tmp_path / "ref.zarr", out)
    assert "progress" not in zarr.open_group(out)


def test_other_arguments_refuse_to_resume(tmp_path, monkeypatch):
    one_per_batch(monkeypatch)
    out = tmp_path / "out.zarr"
    _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        caredask.generate_training_data(raw(), PATCH, K, seed=1, save_file=out, memory_budget=1)
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"other arguments \(n_patches_per_image: 8 then, 9 now"):
        caredask.generate_training_data(raw(), PATCH, K + 1, seed=1, save_file=out)
    with pytest.raises(InputError, match=r"seed: 1 then, 2 now.*resume=False"):
        caredask.generate_training_data(raw(), PATCH, K, seed=2, save_file=out)
    caredask.generate_training_data(raw(), PATCH, K, seed=2, save_file=out, resume=False)
    ref = tmp_path / "ref.zarr"
    caredask.generate_training_data(raw(), PATCH, K, seed=2, save_file=ref)
    same_store(ref, out)


def test_failure_before_any_image_leaves_nothing(tmp_path, monkeypatch):
    one_per_batch(monkeypatch)
    _interrupt_at(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        caredask.generate_training_data(
            raw(), PATCH, K, seed=1, save_file=tmp_path / "o.zarr", memory_budget=1
        )
    assert list(tmp_path.iterdir()) == []


def test_output_far_larger_than_memory_starts_and_streams(tmp_path, monkeypatch):
    """8 GiB of output: the client never allocates it; stop after the first image."""
    one_per_batch(monkeypatch)
    xs, ys = pairs(64, shape=(512, 512), chunks=(256, 256))
    data = RawData.from_arrays(xs, ys, axes="YX")
    k, patch = 1024, (128, 128)
    out_bytes = 64 * k * 2 * 4 * np.prod(patch)
    assert out_bytes == 8 * 2**30

    def stop(snap):
        if snap["images"][0] >= 1:
            raise KeyboardInterrupt

    prog = Progress(0, enabled=False, on_update=stop)
    tracemalloc.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            caredask.generate_training_data(
                data,
                patch,
                k,
                seed=0,
                save_file=tmp_path / "big.zarr",
                progress=prog,
                memory_budget=1,
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < out_bytes / 16
    g = zarr.open_group(tmp_path / "big.zarr.partial")
    assert list(g["progress"].group_keys()) == ["0"]


def test_distributed_worker_killed_mid_job(tmp_path):
    import distributed

    ref = caredask.generate_training_data(raw(6), PATCH, K, seed=4)
    killed = []
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):

        def kill(snap):
            if not killed and snap["statistics"][0] > 0:
                addr = sorted(client.scheduler_info()["workers"])[0]
                pid = client.run(os.getpid, workers=[addr])[addr]
                os.kill(pid, signal.SIGKILL)
                killed.append(addr)

        prog = Progress(0, enabled=False, interval=0, on_update=kill)
        Xz, Yz, _ = caredask.generate_training_data(
            raw(6), PATCH, K, seed=4, save_file=tmp_path / "d.zarr", progress=prog
        )
        assert killed
        snap = prog.snapshot()
        assert snap["images"] == (6, 6) and snap["statistics"][0] > 0
    assert np.array_equal(ref[0], Xz.compute(scheduler="threads"))
    assert np.array_equal(ref[1], Yz.compute(scheduler="threads"))


def test_building_the_job_computes_nothing_until_run(monkeypatch):
    """Graph hygiene: batch cost estimates and plans never compute."""
    from caredask.sampling.schedule import batch_cost

    xs, ys = pairs(2)

    def fail(*a, **k):
        raise AssertionError("computed while estimating")

    with dask.config.set(scheduler=fail):
        cost = batch_cost(list(zip(xs, ys, strict=True)), K, PATCH, 2)
    assert cost > sum(int(np.prod(y.shape)) // 8 for y in ys)


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_progress_counts_every_pass_with_batches_in_flight(scheduler, monkeypatch):
    """dask swaps its global callbacks per computation: each computation carries its own."""
    one_per_batch(monkeypatch)
    prog = Progress(0, enabled=False)
    with dask.config.set(scheduler=scheduler):
        caredask.generate_training_data(
            raw(3, shape=(16, 64, 64), chunks=(4, 32, 32)),
            PATCH,
            K,
            seed=0,
            progress=prog,
            memory_budget="8GiB",
        )
    snap = prog.snapshot()
    for phase in ("statistics", "mask", "extract"):
        assert 0 < snap[phase][0] == snap[phase][1], phase


def test_work_blocks_follow_the_workers_memory():
    from caredask.sampling.schedule import work_block_bytes

    class FakeClient:
        def __init__(self, workers):
            self.workers = workers

        def scheduler_info(self, n_workers=-1):
            return {"workers": dict(enumerate(self.workers))}

    gib = 2**30
    many = [{"memory_limit": 8 * gib, "nthreads": 2}] * 64  # 128 threads
    assert work_block_bytes(None) == 0
    assert work_block_bytes(FakeClient(many)) == 2**28
    assert work_block_bytes(FakeClient(many[:16])) == 2**26  # 32 threads: 64 MiB
    assert work_block_bytes(FakeClient(many[:2])) == 2**26  # at least 64 MiB
    assert work_block_bytes(FakeClient(many[:48])) == 3 * 2**26  # 96 threads: 192 MiB
    small = [{"memory_limit": gib, "nthreads": 1}, *many]
    assert work_block_bytes(FakeClient(small)) == 2**26  # the smallest worker's memory
    assert work_block_bytes(FakeClient([{"memory_limit": 0, "nthreads": 128}])) == 2**26


def test_grown_block_doubles_the_shortest_axis_within_the_size():
    from caredask.loaders.base import grown_block

    assert grown_block((32, 512, 512), (128, 2048, 2048), 2, 2**26, (16, 64, 64)) == (
        128,
        512,
        512,
    )
    assert grown_block((32, 512, 512), (128, 2048, 2048), 2, 2**27, (16, 64, 64)) == (
        128,
        1024,
        512,
    )
    assert grown_block((32, 512, 512), (128, 2048, 2048), 2, 2**24, None) == (32, 512, 512)
    # a short image: blocks stop at the edge, as multiples of the chunk
    assert grown_block((3, 5), (7, 5), 1, 10**6) == (7, 5)


@pytest.mark.parametrize("cluster", [False, True])
def test_work_blocks_cut_tasks_not_the_result(tmp_path, monkeypatch, cluster):
    """On a cluster a job reads in blocks grown from the store's chunks; same training data."""
    import contextlib

    import distributed

    import caredask.sampling.schedule as schedule
    from caredask.sampling import items as items_mod

    xs, ys = pairs(2, shape=(8, 64, 64), chunks=(2, 16, 16))
    paths: dict[str, list[str]] = {"low": [], "GT": []}
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        for kind, a in (("low", x), ("GT", y)):
            p = tmp_path / kind / f"im{i}.zarr"
            z = zarr.create_array(p, shape=a.shape, chunks=(2, 16, 16), dtype=a.dtype)
            z[...] = a.compute()
            paths[kind].append(str(p))

    def src():
        return RawData.from_sources(paths["low"], paths["GT"], axes="ZYX")

    ref = caredask.generate_training_data(src(), PATCH, K, seed=2)
    monkeypatch.setattr(schedule, "MAX_WORK_BLOCK", 8 * 2 * 16 * 16 * 2)  # 8 chunks
    blocks = []
    real = items_mod.coarsen

    def spy(a, target, scale=None):
        out = real(a, target, scale)
        blocks.append((a.npartitions, out.npartitions))
        return out

    monkeypatch.setattr(items_mod, "coarsen", spy)
    with contextlib.ExitStack() as stack:
        if cluster:
            lc = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
                )
            )
            stack.enter_context(distributed.Client(lc))
        got = caredask.generate_training_data(src(), PATCH, K, seed=2)
    assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
    if cluster:
        assert blocks and all(n_out * 8 == n_in for n_in, n_out in blocks), blocks
    else:
        assert not blocks  # the threaded scheduler keeps the store's read unit


def test_worker_processes_get_caredask_malloc_settings(monkeypatch):
    import distributed

    from caredask.sampling.schedule import WORKER_MALLOC_ENV, worker_environment

    before = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    # an earlier cluster's nanny leaves distributed's own value in this process's environment
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with worker_environment():
        env = dask.config.get("distributed.nanny.pre-spawn-environ")
        assert {k: env[k] for k in WORKER_MALLOC_ENV} == WORKER_MALLOC_ENV
        assert set(before) <= set(env)  # dask's other settings kept
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        )
    with cluster, distributed.Client(cluster) as client:
        got = client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV})
    assert list(got.values()) == [WORKER_MALLOC_ENV]
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # restored
