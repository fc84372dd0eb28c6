"""Tests of caredask.TrainingStore: lazy map-style reads of .zarr / .npz training data."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from caredask import RawData, TrainingStore, generate_training_data
from caredask.errors import FormatError, InputError, SourceNotFoundError
from caredask.writers.npz import save_training_data

from .conftest import blob_pair


def _images(n: int = 4) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pairs = [blob_pair((40 + 4 * i, 36), seed=i) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.fixture(scope="module")
def zarr_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    xs, ys = _images()
    out = tmp_path_factory.mktemp("store") / "train.zarr"
    generate_training_data(
        RawData.from_arrays(xs, ys, axes="YX"),
        (8, 8),
        5,
        seed=3,
        save_file=out,
        normalization=None,
    )
    return out, xs


def test_len_items_and_slices_match_the_file(zarr_store: Any) -> None:
    path, _ = zarr_store
    g = zarr.open_group(path, mode="r")
    X, Y = g["X"][...], g["Y"][...]
    store = TrainingStore(path)
    assert len(store) == len(X) == 20 and store.axes == "SCYX"
    x, y = store[3]
    assert x.shape == (1, 8, 8) and np.array_equal(x, X[3]) and np.array_equal(y, Y[3])
    assert np.array_equal(store[-1][0], X[-1])
    xs, ys = store[2:7]
    assert np.array_equal(xs, X[2:7]) and np.array_equal(ys, Y[2:7])
    assert np.array_equal(store.X.compute(), X) and np.array_equal(store.Y.compute(), Y)
    assert store.X.chunks[0] == (1,) * 20
    assert sum(1 for _ in store) == 20
    with pytest.raises(IndexError, match="out of range"):
        store[20]
    with pytest.raises(InputError, match="int or slice"):
        store["a"]  # type: ignore[index]


def test_patch_start_and_image_locate_each_patch(zarr_store: Any) -> None:
    path, xs = zarr_store
    store = TrainingStore(path)
    starts, image = store.patch_start, store.patch_image
    assert starts is not None and image is not None and starts.shape == (20, 2)
    assert np.bincount(image).tolist() == [5, 5, 5, 5]
    assert [r["index"] for r in store.provenance["images"]] == [0, 1, 2, 3]
    for i in range(len(store)):
        r, c = starts[i]
        x, _ = store[i]
        assert np.array_equal(x[0], xs[image[i]][r : r + 8, c : c + 8].astype(np.float32))


@pytest.mark.parametrize("by", ["image", "patch"])
def test_split_partitions_rows(zarr_store: Any, by: str) -> None:
    path, _ = zarr_store
    store = TrainingStore(path)
    train, val = store.split(validation=0.25, seed=1, by=by)
    assert len(train) + len(val) == len(store)
    assert sorted(np.concatenate([train.rows, val.rows]).tolist()) == list(range(len(store)))
    assert list(train.rows) == sorted(train.rows)
    assert np.array_equal(val[0][0], store[int(val.rows[0])][0])
    ti, vi = train.patch_image, val.patch_image
    assert ti is not None and vi is not None
    assert np.array_equal(vi, store.patch_image[val.rows])  # type: ignore[index]
    if by == "image":
        assert not set(ti) & set(vi) and len(set(vi)) == 1
    else:
        assert len(val) == 5
    again = store.split(validation=0.25, seed=1, by=by)[1]
    assert np.array_equal(again.rows, val.rows)
    # a split store splits again, inside its own rows
    a, b = train.split(validation=0.5, seed=0, by="patch")
    assert set(a.rows) | set(b.rows) == set(train.rows)
    assert np.array_equal(train.X.compute(), store.X.compute()[train.rows])


def test_split_errors(zarr_store: Any, tmp_path: Path) -> None:
    store = TrainingStore(zarr_store[0])
    with pytest.raises(InputError, match="by='x'"):
        store.split(by="x")
    with pytest.raises(InputError, match=r"must be in \(0, 1\)"):
        store.split(validation=1.0)
    with pytest.raises(InputError, match="both must be > 0"):
        store.split(validation=0.05, by="image")
    X = np.zeros((4, 1, 3, 3), np.float32)
    npz = TrainingStore(save_training_data(tmp_path / "d.npz", X, X + 1, "SCYX"))
    with pytest.raises(InputError, match="no patch_image"):
        npz.split(by="image")


def test_npz_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((6, 2, 4, 5)).astype(np.float32)
    Y = rng.random((6, 2, 4, 5)).astype(np.float32)
    store = TrainingStore(save_training_data(tmp_path / "d.npz", X, Y, "SCYX"))
    assert len(store) == 6 and store.axes == "SCYX" and store.provenance == {}
    assert store.patch_start is None and store.patch_image is None
    assert np.array_equal(store[4][1], Y[4]) and np.array_equal(store[1:3][0], X[1:3])
    assert np.array_equal(store.Y.compute(), Y)
    _, val = store.split(validation=0.5, seed=0, by="patch")
    clone = pickle.loads(pickle.dumps(val))
    assert np.array_equal(clone[:][0], X[val.rows])


def test_errors_name_the_file(tmp_path: Path, zarr_store: Any) -> None:
    with pytest.raises(SourceNotFoundError, match=r"missing\.zarr"):
        TrainingStore(tmp_path / "missing.zarr")
    broken = tmp_path / "broken.zarr"
    shutil.copytree(zarr_store[0], broken)
    g = zarr.open_group(broken, mode="r+")
    g.attrs["complete"] = False
    with pytest.raises(FormatError, match=r"broken\.zarr.*incomplete"):
        TrainingStore(broken)
    with pytest.raises(InputError, match=r"rows must lie in \[0, 20\)"):
        TrainingStore(zarr_store[0], rows=[0, 20])


def test_pickle_carries_no_open_arrays(zarr_store: Any) -> None:
    store = TrainingStore(zarr_store[0])
    store[0]  # opens the Zarr arrays in this process
    assert store._arrays is not None
    blob = pickle.dumps(store)
    clone = pickle.loads(blob)
    assert clone._arrays is None and len(blob) < 2000
    assert np.array_equal(clone[7][1], store[7][1])


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_worker_processes_read_random_indices(zarr_store: Any, start: str) -> None:
    """Like a PyTorch DataLoader with workers: the store goes to spawned or forked processes
    (forked after the parent opened it: each process opens its own)."""
    path, _ = zarr_store
    train, _ = TrainingStore(path).split(validation=0.25, seed=0)
    train[0]
    idx = np.random.default_rng(5).integers(0, len(train), 12).tolist()
    ctx = multiprocessing.get_context(start)
    with ctx.Pool(2) as pool:
        got = pool.map(train.__getitem__, idx)
    g = zarr.open_group(path, mode="r")
    for i, (x, y) in zip(idx, got, strict=True):
        row = int(train.rows[i])
        assert np.array_equal(x, g["X"][row]) and np.array_equal(y, g["Y"][row])
