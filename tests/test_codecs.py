"""The zarrs codec pipeline: chosen at open time, switchable, identical pixels on any scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as da
import distributed
import numpy as np
import pytest
import zarr
import zarrs  # noqa: F401 - the test extra installs it: these tests must not skip in CI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import caredask
from caredask.cli.main import main
from caredask.loaders import open_images
from caredask.loaders.codecs import (
    codec_pipeline_name,
    use_zarrs,
    zarr_config,
    zarrs_available,
    zarrs_enabled,
)
from tests.conftest_remote import HttpStore, http_store

__all__ = ["http_store"]  # the fixture, imported for pytest
SHAPE = (24, 70, 90)


def _write(path: Path, sharded: bool, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).integers(0, 4000, SHAPE).astype("uint16")
    kw: dict[str, Any] = {"shards": (16, 64, 64)} if sharded else {}
    zarr.create_array(path, data=data, chunks=(8, 16, 32), dimension_names=("z", "y", "x"), **kw)
    return data


def _graph_arrays(img: caredask.LazyImage) -> list[zarr.Array]:
    graph = dict(img.data.__dask_graph__())
    values = [getattr(v, "array", v) for v in graph.values()]  # through the guarded reader
    return [v for v in values if isinstance(v, zarr.Array)]


@pytest.fixture(params=[False, True], ids=["plain", "sharded"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, np.ndarray]:
    path = tmp_path / "img.zarr"
    return path, _write(path, request.param)


def test_switch_env_and_default(monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    path, _ = store
    assert zarrs_available() and zarrs_enabled()
    before = zarr.config.get("codec_pipeline.path")
    (img,) = open_images(str(path))
    assert [codec_pipeline_name(a) for a in _graph_arrays(img)] == ["ZarrsCodecPipeline"]
    assert zarr.config.get("codec_pipeline.path") == before  # nothing leaks into zarr.config
    monkeypatch.setenv("CAREDASK_ZARRS", "0")
    assert not zarrs_enabled()
    (img,) = open_images(str(path))
    assert [codec_pipeline_name(a) for a in _graph_arrays(img)] == ["BatchedCodecPipeline"]
    with use_zarrs(True):  # the Python switch wins over the environment
        assert zarrs_enabled()
    monkeypatch.delenv("CAREDASK_ZARRS")
    with use_zarrs(False):
        (img,) = open_images(str(path))
        assert codec_pipeline_name(_graph_arrays(img)[0]) == "BatchedCodecPipeline"
    assert zarrs_enabled()


def test_unsupported_store_keeps_default_pipeline() -> None:
    with zarr_config():
        arr = zarr.create_array(zarr.storage.MemoryStore(), shape=(10,), chunks=(5,), dtype="u2")
    arr[:] = np.arange(10)
    assert codec_pipeline_name(arr) == "BatchedCodecPipeline"
    assert np.array_equal(arr[:], np.arange(10))


def test_remote_store_keeps_default_pipeline(http_store: HttpStore) -> None:
    data = _write(http_store.root / "r.zarr", sharded=True)
    (img,) = open_images(f"{http_store.url}/r.zarr")
    assert codec_pipeline_name(_graph_arrays(img)[0]) == "BatchedCodecPipeline"
    assert np.array_equal(img.data.compute(), data)
    (img,) = open_images(f"file://{http_store.root}/r.zarr")  # file:// is local
    assert codec_pipeline_name(_graph_arrays(img)[0]) == "ZarrsCodecPipeline"


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.tuples(*(st.integers(max(1, s // 6), s) for s in SHAPE)),
    lo=st.tuples(*(st.integers(0, s - 1) for s in SHAPE)),
)
def test_identical_on_random_chunkings_threads(store: Any, chunks: Any, lo: Any) -> None:
    path, data = store
    (fast,) = open_images(str(path), chunks=chunks)
    with use_zarrs(False):
        (slow,) = open_images(str(path), chunks=chunks)
    window = tuple(slice(a, None) for a in lo)
    with dask.config.set(scheduler="threads", num_workers=8):
        a, b = da.compute(fast.data[window], slow.data[window])
    assert np.array_equal(a, data[window]) and np.array_equal(b, data[window])


def test_thread_safety_many_concurrent_reads(store: Any) -> None:
    path, data = store
    (img,) = open_images(str(path), chunks=(3, 7, 11))
    stack = da.stack([img.data[::-1] for _ in range(6)] + [img.data.T.T for _ in range(6)])
    with dask.config.set(scheduler="threads", num_workers=16):
        out = stack.compute()
    assert all(np.array_equal(o, data[::-1]) for o in out[:6])
    assert all(np.array_equal(o, data) for o in out[6:])


def _worker_pipeline_default() -> str:
    return str(zarr.config.get("codec_pipeline.path"))


def test_distributed_processes_use_the_clients_choice(store: Any) -> None:
    path, data = store
    (fast,) = open_images(str(path), chunks=(8, 32, 32))
    with use_zarrs(False):
        (slow,) = open_images(str(path), chunks=(8, 32, 32))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        defaults = set(client.run(_worker_pipeline_default).values())
        assert defaults == {"zarr.core.codec_pipeline.BatchedCodecPipeline"}  # no worker setup
        arr = _graph_arrays(fast)[0]
        assert client.submit(codec_pipeline_name, arr).result() == "ZarrsCodecPipeline"
        arr = _graph_arrays(slow)[0]
        assert client.submit(codec_pipeline_name, arr).result() == "BatchedCodecPipeline"
        a, b = client.compute([fast.data, slow.data], sync=True)
    assert np.array_equal(a, data) and np.array_equal(b, data)


def test_training_data_identical_with_and_without_zarrs(tmp_path: Path) -> None:
    from tests.conftest import blob_pair

    x, y = blob_pair((24, 70, 90), 3)
    kw: dict[str, Any] = {"chunks": (8, 32, 32), "shards": (16, 64, 64)}
    zarr.create_array(tmp_path / "x.zarr", data=x, dimension_names=("z", "y", "x"), **kw)
    zarr.create_array(tmp_path / "y.zarr", data=y, dimension_names=("z", "y", "x"), **kw)
    runs = []
    for enabled in (True, False):
        with use_zarrs(enabled):
            raw = caredask.RawData.from_sources(str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr"))
            runs.append(caredask.generate_training_data(raw, (8, 16, 16), 20, seed=1)[:2])
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_cli_no_zarrs(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import caredask.cli.inspect_cmd as cli

    path, _ = store
    seen: list[str] = []

    def inspect(args: Any) -> int:
        (img,) = open_images(args.path[0])
        seen.append(codec_pipeline_name(_graph_arrays(img)[0]))
        return 0

    monkeypatch.setattr(cli, "run", inspect)
    for argv in (["--no-zarrs", "inspect", str(path)], ["inspect", str(path), "--no-zarrs"]):
        assert main(argv) == 0
    assert main(["inspect", str(path)]) == 0
    assert seen == ["BatchedCodecPipeline", "BatchedCodecPipeline", "ZarrsCodecPipeline"]
    assert zarrs_enabled()  # the flag does not outlive the command


@pytest.mark.parametrize("chunks", [None, (5, 13, 40)], ids=["store-chunks", "odd-chunks"])
@pytest.mark.parametrize("sharded", [False, True], ids=["plain", "sharded"])
@pytest.mark.parametrize("zarrs_on", [True, False], ids=["zarrs", "zarr-python"])
def test_bit_identical_to_csbdeep(
    tmp_path: Path, chunks: Any, sharded: bool, zarrs_on: bool
) -> None:
    import csbdeep.data as cd

    import caredask.csbdeep as cc
    from tests.conftest import blob_pair

    x, y = blob_pair((20, 64, 72), 5)
    kw: dict[str, Any] = {"chunks": (8, 32, 32)}
    if sharded:
        kw["shards"] = (16, 64, 64)
    for name, a in (("x", x), ("y", y)):
        zarr.create_array(tmp_path / f"{name}.zarr", data=a, dimension_names=("z", "y", "x"), **kw)
    np.random.seed(11)
    ref = cd.create_patches(cd.RawData.from_arrays([x], [y], axes="ZYX"), (4, 16, 16), 10)
    opts = {} if chunks is None else {"chunks": chunks}
    with use_zarrs(zarrs_on):
        raw = cc.RawData.from_sources(str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr"), **opts)
        np.random.seed(11)
        got = cc.create_patches(raw, (4, 16, 16), 10, verbose=False)
    assert got[2] == ref[2]
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
