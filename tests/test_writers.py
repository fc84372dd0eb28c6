"""Tests of caredask.writers: csbdeep-compatible .npz, the streaming Zarr store and the loader."""

from __future__ import annotations

import json
import os
import sys
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from csbdeep.io import load_training_data as csb_load
from csbdeep.io import save_training_data as csb_save

from caredask.errors import AxesError, FormatError, InputError, SourceNotFoundError
from caredask.writers.load import load_training_data
from caredask.writers.npz import save_training_data
from caredask.writers.zarr_store import TrainingDataWriter, save_training_data_zarr


def _data(n: int = 10, seed: int = 0, shape: tuple[int, ...] = (2, 6, 5)) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *shape)).astype(np.float32)
    Y = rng.normal(size=(n, *shape)).astype(np.float32)
    return X, Y


def _npz_contents(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# --------------------------------------------------------------------------- npz


@pytest.mark.parametrize(
    ("xdtype", "ydtype", "axes"),
    [
        (np.float32, np.float32, "scyx"),
        (np.uint16, np.float64, "SZYXC"),
        (np.float32, np.int8, "SC"),
    ],
)
def test_npz_identical_to_csbdeep(tmp_path: Path, xdtype: Any, ydtype: Any, axes: str) -> None:
    rng = np.random.default_rng(1)
    shape = (4, 3, 5, 2, 3)[: len(axes)]
    X = (rng.random(shape) * 100).astype(xdtype)
    Y = (rng.random(shape) * 100).astype(ydtype)
    ours = save_training_data(tmp_path / "ours" / "d.data", X, Y, axes)
    csb_save(tmp_path / "theirs" / "d.data", X, Y, axes)
    a, b = _npz_contents(ours), _npz_contents(tmp_path / "theirs" / "d.npz")
    assert ours == tmp_path / "ours" / "d.npz"
    assert list(a) == list(b) == ["X", "Y", "axes"]
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        assert np.array_equal(a[k], b[k])
    assert a["axes"].shape == () and a["axes"].item() == axes.upper()
    assert a["axes"].dtype == np.dtype(f"<U{len(axes)}")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("my.training.data", "my.training.npz"), ("plain", "plain.npz"), ("t.npz", "t.npz")],
)
def test_npz_with_suffix_and_parents(tmp_path: Path, name: str, expected: str) -> None:
    X, Y = _data(2)
    out = save_training_data(str(tmp_path / "a" / "b" / name), X, Y, "SCYX")
    assert out == tmp_path / "a" / "b" / expected
    assert os.listdir(tmp_path / "a" / "b") == [expected]


def test_npz_overwrites(tmp_path: Path) -> None:
    X, Y = _data(3)
    save_training_data(tmp_path / "d.npz", X, Y, "SCYX")
    save_training_data(tmp_path / "d.npz", X[:1], Y[:1], "SCYX")
    assert _npz_contents(tmp_path / "d.npz")["X"].shape[0] == 1


def test_npz_errors(tmp_path: Path) -> None:
    X, Y = _data(2)
    with pytest.raises(InputError, match=r"must be a str or pathlib\.Path"):
        save_training_data(123, X, Y, "SCYX")  # type: ignore[arg-type]
    with pytest.raises(AxesError, match="3 letters but X has 4 dimensions"):
        save_training_data(tmp_path / "d", X, Y, "SYX")
    with pytest.raises(AxesError, match="invalid axis 'Q'"):
        save_training_data(tmp_path / "d", X, Y, "SQYX")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("existing", [False, True])
def test_npz_atomic_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    X, Y = _data(3)
    target = tmp_path / "d.npz"
    if existing:
        save_training_data(target, X, Y, "SCYX")
    before = target.read_bytes() if existing else None

    def broken_savez(file: Any, **kw: Any) -> None:
        file.write(b"PK\x03\x04 partial zip")  # a half-written file ...
        raise OSError("disk full")  # ... then the crash

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_training_data(target, X[:1], Y[:1], "SCYX")
    assert os.listdir(tmp_path) == (["d.npz"] if existing else [])
    if existing:
        assert target.read_bytes() == before


# --------------------------------------------------------------------------- zarr writer


def _read_store(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    g = zarr.open_group(path, mode="r")
    x, y = zarr.open_array(path / "X", mode="r"), zarr.open_array(path / "Y", mode="r")
    return np.asarray(x[...]), np.asarray(y[...]), g.attrs.asdict()


def test_writer_concurrent_random_rows(tmp_path: Path) -> None:
    X, Y = _data(40, shape=(1, 8, 8))
    Y[7] = 0  # an all-zero patch must still count as written
    rng = np.random.default_rng(5)
    order = rng.permutation(40)
    batches = np.split(order, np.sort(rng.choice(np.arange(1, 40), 9, replace=False)))
    path = tmp_path / "train.zarr"
    attrs = {"seed": np.int64(3), "patch_size": (1, 8, 8), "pmin": np.float64(2.0)}
    with TrainingDataWriter(path, 40, (1, 8, 8), (1, 8, 8), "scyx", attrs=attrs) as w:
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda r: w.write(r, X[r], Y[r]), batches))
        w.set_attrs(coords={"img0": np.arange(4).reshape(2, 2)})
        assert not path.exists() and w.partial_path.is_dir()
    assert not w.partial_path.exists()
    gx, gy, gattrs = _read_store(path)
    assert gx.dtype == np.float32 and np.array_equal(gx, X) and np.array_equal(gy, Y)
    assert gattrs["complete"] is True and gattrs["axes"] == "SCYX"
    rec = gattrs["caredask"]
    assert rec["seed"] == 3 and rec["patch_size"] == [1, 8, 8] and rec["pmin"] == 2.0
    assert rec["coords"] == {"img0": [[0, 1], [2, 3]]} and "caredask_version" in rec
    assert zarr.open_array(path / "X", mode="r").chunks == (1, 1, 8, 8)


def test_writer_exception_leaves_nothing(tmp_path: Path) -> None:
    X, Y = _data(4)
    path = tmp_path / "t.zarr"
    with pytest.raises(RuntimeError, match="boom"):
        with TrainingDataWriter(path, 4, X.shape[1:], Y.shape[1:], "SCYX") as w:
            w.write(np.arange(4), X, Y)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_missing_rows_refused(tmp_path: Path) -> None:
    X, Y = _data(4)
    with pytest.raises(InputError, match=r"2 of 4 patches were never written.*\[1, 3\]"):
        with TrainingDataWriter(tmp_path / "t.zarr", 4, X.shape[1:], Y.shape[1:], "SCYX") as w:
            w.write(np.array([2, 0]), X[[2, 0]], Y[[2, 0]])
    assert list(tmp_path.iterdir()) == []


def test_writer_killed_run(tmp_path: Path) -> None:
    X, Y = _data(4)
    path = tmp_path / "t.zarr"
    w = TrainingDataWriter(path, 4, X.shape[1:], Y.shape[1:], "SCYX")
    w.write(np.arange(4), X, Y)  # ... and the process dies before close()
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.zarr.partial"]
    with pytest.raises(FormatError, match=r"incomplete .*interrupted.*regenerate"):
        load_training_data(w.partial_path)
    with pytest.raises(SourceNotFoundError, match="interrupted"):
        load_training_data(path)
    # a new run replaces the stale partial store
    save_training_data_zarr(path, X, Y, "SCYX", overwrite=False)
    assert np.array_equal(_read_store(path)[0], X)
    assert [p.name for p in tmp_path.iterdir()] == ["t.zarr"]


def test_writer_overwrite_rules(tmp_path: Path) -> None:
    X, Y = _data(3)
    path = tmp_path / "t.zarr"
    save_training_data_zarr(path, X, Y, "SCYX")
    with pytest.raises(InputError, match=r"t\.zarr' already exists; pass overwrite=True"):
        TrainingDataWriter(path, 3, X.shape[1:], Y.shape[1:], "SCYX")
    w = TrainingDataWriter(path, 1, X.shape[1:], Y.shape[1:], "SCYX", overwrite=True)
    w.write([0], X[2:], Y[2:])
    assert np.array_equal(_read_store(path)[0], X)  # old store intact until close()
    w.close()
    assert np.array_equal(_read_store(path)[0], X[2:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.zarr"]


@pytest.mark.parametrize("kind", ["dir", "file", "zarr"])
def test_writer_never_deletes_foreign_data(tmp_path: Path, kind: str) -> None:
    X, Y = _data(2)
    path = tmp_path / "t.zarr"
    if kind == "dir":
        path.mkdir()
        (path / "precious.txt").write_text("keep")
    elif kind == "file":
        path.write_text("keep")
    else:
        zarr.create_array(path, shape=(2,), dtype="i4")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(InputError, match=r"refusing to overwrite .*not a caredask"):
        save_training_data_zarr(path, X, Y, "SCYX", overwrite=True)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_writer_replaces_empty_dir_and_refuses_foreign_partial(tmp_path: Path) -> None:
    X, Y = _data(2)
    (tmp_path / "e.zarr").mkdir()
    save_training_data_zarr(tmp_path / "e.zarr", X, Y, "SCYX")
    assert np.array_equal(_read_store(tmp_path / "e.zarr")[1], Y)
    (tmp_path / "f.zarr.partial").mkdir()
    (tmp_path / "f.zarr.partial" / "x").write_text("keep")
    with pytest.raises(InputError, match=r"f\.zarr\.partial' exists and is not"):
        save_training_data_zarr(tmp_path / "f.zarr", X, Y, "SCYX")
    assert (tmp_path / "f.zarr.partial" / "x").read_text() == "keep"


def test_writer_argument_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.zarr"
    with pytest.raises(AxesError, match="3 letters but X patches have 4"):
        TrainingDataWriter(p, 2, (1, 4, 4), (1, 4, 4), "SYX")
    with pytest.raises(InputError, match="same number of dimensions"):
        TrainingDataWriter(p, 2, (1, 4, 4), (4, 4), "SCYX")
    with pytest.raises(InputError, match="n_patches must be positive"):
        TrainingDataWriter(p, 0, (1, 4, 4), (1, 4, 4), "SCYX")
    with pytest.raises(InputError, match="only local paths"):
        TrainingDataWriter("s3://bucket/t.zarr", 2, (1, 4, 4), (1, 4, 4), "SCYX")
    with pytest.raises(InputError, match="JSON-serialisable"):
        TrainingDataWriter(p, 2, (1, 4, 4), (1, 4, 4), "SCYX", attrs={"f": object()})
    assert list(tmp_path.iterdir()) == []
    X, Y = _data(3, shape=(1, 4, 4))
    w = TrainingDataWriter(p, 3, (1, 4, 4), (1, 4, 4), "SCYX")
    with pytest.raises(InputError, match=r"rows must lie in \[0, 3\)"):
        w.write([1, 3], X[:2], Y[:2])
    with pytest.raises(InputError, match="rows must be unique"):
        w.write([1, 1], X[:2], Y[:2])
    with pytest.raises(InputError, match="1-d array of int"):
        w.write([0.5], X[:1], Y[:1])
    with pytest.raises(InputError, match=r"Y has shape \(2, 1, 4, 5\), expected \(2, 1, 4, 4\)"):
        w.write([0, 1], X[:2], np.zeros((2, 1, 4, 5)))
    w.write(np.arange(3), X, Y)
    w.close()
    with pytest.raises(InputError, match="is closed"):
        w.write([0], X[:1], Y[:1])


def test_save_zarr_from_dask_blockwise(tmp_path: Path) -> None:
    X, Y = _data(11, shape=(1, 6, 6))
    dx = da.from_array(X, chunks=(4, 1, 3, 6))  # blocks split rows: must be rechunked
    dy = da.from_array(Y.astype(np.float64), chunks=(5, 1, 6, 2))
    calls: list[int] = []

    def counting_get(dsk: Any, keys: Any, **kw: Any) -> Any:
        calls.append(threading.get_ident())
        return dask.threaded.get(dsk, keys, **kw)

    with dask.config.set(scheduler=counting_get):
        save_training_data_zarr(tmp_path / "d.zarr", dx, dy, "SCYX", attrs={"src": "dask"})
    assert calls  # written through the dask scheduler, not np.asarray
    gx, gy, attrs = _read_store(tmp_path / "d.zarr")
    assert np.array_equal(gx, X) and np.array_equal(gy, Y)
    assert attrs["caredask"]["src"] == "dask" and attrs["complete"] is True


# --------------------------------------------------------------------------- loader


@pytest.fixture
def fake_tf(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Stand-in for csbdeep.utils.tf (TensorFlow is not installed) with a settable data format."""
    backend = types.SimpleNamespace(fmt="channels_last")
    backend.image_data_format = lambda: backend.fmt
    mod = types.ModuleType("csbdeep.utils.tf")
    mod.BACKEND = backend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "csbdeep.utils.tf", mod)
    return backend


def _assert_same(a: Any, b: Any) -> None:
    (x, y), val, axes = a
    (x2, y2), val2, axes2 = b
    assert axes == axes2
    assert x.shape == x2.shape and np.array_equal(x, x2) and np.array_equal(y, y2)
    assert (val is None) == (val2 is None)
    if val is not None:
        assert all(
            np.array_equal(u, v) and u.shape == v.shape for u, v in zip(val, val2, strict=True)
        )


@pytest.mark.parametrize(
    ("split", "n_images", "axes", "channel_last"),
    [
        (0, None, None, True),
        (0.25, None, None, True),
        (0.5, 5, None, False),
        (0.1, 7, "SYXC", True),
        (0.3, 10, "SYCX", False),
        (0.3, 10, "TYXC", True),
    ],
)
def test_load_matches_csbdeep(
    tmp_path: Path,
    fake_tf: types.SimpleNamespace,
    split: float,
    n_images: int | None,
    axes: str | None,
    channel_last: bool,
) -> None:
    X, Y = _data(10)
    csb_save(tmp_path / "d.npz", X, Y, "SCYX")
    save_training_data_zarr(tmp_path / "d.zarr", X, Y, "SCYX")
    fake_tf.fmt = "channels_last" if channel_last else "channels_first"
    expected = csb_load(tmp_path / "d.npz", split, axes, n_images)
    for src in ("d.npz", "d.zarr"):
        got = load_training_data(tmp_path / src, split, axes, n_images, channel_last=channel_last)
        _assert_same(got, expected)


def test_load_values_and_verbose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X, Y = _data(10)
    save_training_data(tmp_path / "d.npz", X, Y, "scyx")
    (x, _), val, axes = load_training_data(tmp_path / "d.npz", 0.2, n_images=9, verbose=True)
    assert axes == "SYXC" and val is not None
    n_val = round(9 * 0.2)  # banker's rounding: 1.8 -> 2
    assert np.array_equal(x, np.moveaxis(X[: 9 - n_val], 1, -1))
    assert np.array_equal(val[1], np.moveaxis(Y[9 - n_val : 9], 1, -1))
    assert "validation images: 2" in capsys.readouterr().out


def test_load_zarr_reads_only_first_images(tmp_path: Path) -> None:
    X, Y = _data(12)
    save_training_data_zarr(tmp_path / "d.zarr", X, Y, "SCYX")
    chunk = tmp_path / "d.zarr" / "X" / "c" / "11"
    for f in chunk.rglob("*"):
        if f.is_file():
            f.write_bytes(b"corrupt")  # would fail to decode if read
    (x, _), _, _ = load_training_data(tmp_path / "d.zarr", n_images=5)
    assert np.array_equal(x, np.moveaxis(X[:5], 1, -1))


def test_load_errors(tmp_path: Path) -> None:
    X, Y = _data(4)
    f = tmp_path / "d.npz"
    save_training_data(f, X, Y, "SCYX")
    with pytest.raises(InputError, match=r"n_images must be in 1\.\.4"):
        load_training_data(f, n_images=5)
    with pytest.raises(InputError, match=r"n_images must be in 1\.\.4"):
        load_training_data(f, n_images=0)
    with pytest.raises(InputError, match=r"validation_split must be in \[0, 1\)"):
        load_training_data(f, validation_split=1.0)
    with pytest.raises(InputError, match="gives 0 validation and 4 training"):
        load_training_data(f, validation_split=0.1)
    with pytest.raises(AxesError, match="no channel axis 'C'"):
        load_training_data(f, axes="SZYX")
    with pytest.raises(AxesError, match="3 letters but X has 4"):
        load_training_data(f, axes="SYX")
    np.savez(tmp_path / "noaxes.npz", X=X, Y=Y)
    with pytest.raises(AxesError, match="stores no axes; pass axes="):
        load_training_data(tmp_path / "noaxes.npz")
    assert load_training_data(tmp_path / "noaxes.npz", axes="SCYX")[2] == "SYXC"
    np.savez(tmp_path / "ndim.npz", X=X, Y=Y[:, 0], axes="SCYX")
    with pytest.raises(FormatError, match="differ in dimensions"):
        load_training_data(tmp_path / "ndim.npz")
    np.savez(tmp_path / "n.npz", X=X, Y=Y[:3], axes="SCYX")
    with pytest.raises(FormatError, match=r"different numbers of patches \(4 vs 3\)"):
        load_training_data(tmp_path / "n.npz")
    np.savez(tmp_path / "keys.npz", A=X)
    with pytest.raises(FormatError, match="not X and Y"):
        load_training_data(tmp_path / "keys.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="cannot read training data"):
        load_training_data(tmp_path / "junk.npz")
    with pytest.raises(SourceNotFoundError, match=r"did you mean .*d\.npz"):
        load_training_data(tmp_path / "d.data")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(FormatError, match="not a caredask training data store"):
        load_training_data(tmp_path / "empty.zarr")


def test_load_zarr_incomplete_flag(tmp_path: Path) -> None:
    X, Y = _data(3)
    save_training_data_zarr(tmp_path / "d.zarr", X, Y, "SCYX")
    meta = tmp_path / "d.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"]["complete"]
    meta.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"incomplete .*regenerate"):
        load_training_data(tmp_path / "d.zarr")


@pytest.mark.parametrize("new_complete", [True, False])
def test_crash_between_the_renames_of_a_replacement_is_recovered(
    tmp_path, monkeypatch, new_complete
):
    import os as _os

    from caredask.writers.zarr_store import recover_replacement, save_training_data_zarr

    path = tmp_path / "t.zarr"
    old_x = np.zeros((2, 1, 4, 4), np.float32)
    save_training_data_zarr(path, old_x, old_x, "SCYX")
    calls = []
    real = _os.replace

    class Killed(Exception):
        pass

    def crash_on_second(src, dst):
        calls.append(src)
        if str(src).endswith("t.zarr.partial"):
            raise Killed  # killed between moving the old store aside and the new in
        return real(src, dst)

    from caredask.writers.zarr_store import TrainingDataWriter

    monkeypatch.setattr(_os, "replace", crash_on_second)
    monkeypatch.setattr(TrainingDataWriter, "abort", lambda self: None)  # a kill cleans nothing
    new_x = np.ones((2, 1, 4, 4), np.float32)
    with pytest.raises(Killed):
        save_training_data_zarr(path, new_x, new_x, "SCYX", overwrite=True)
    monkeypatch.undo()
    assert not path.exists()  # the window: neither store at the path
    partial = tmp_path / "t.zarr.partial"
    if not new_complete:
        import shutil

        shutil.rmtree(partial)
    recover_replacement(path)
    X = zarr.open_group(path, mode="r")["X"][...]
    assert np.array_equal(X, new_x if new_complete else old_x)
    assert not list(tmp_path.glob(".t.zarr.old-*"))


@pytest.mark.parametrize("fast", [True, False])
def test_row_writer_stores_every_row_with_either_pipeline(tmp_path: Path, fast: bool) -> None:
    import pickle

    from caredask.loaders.codecs import codec_pipeline_name, use_zarrs
    from caredask.writers.zarr_store import RowWriter

    X, Y = _data(12, shape=(1, 8, 8))
    X[3] = 0  # equal to the fill value: zarrs alone would not store its chunk
    Y[[0, 11]] = 0
    path = tmp_path / "rows.zarr"
    with use_zarrs(fast), TrainingDataWriter(path, 12, (1, 8, 8), (1, 8, 8), "SCYX") as w:
        xw, yw = RowWriter(w.X), RowWriter(w.Y)
        if fast:
            assert xw.fast is not None and codec_pipeline_name(xw.fast) == "ZarrsCodecPipeline"
        else:
            assert xw.fast is None
        order = np.random.default_rng(0).permutation(12)
        xw.write(order[:7], X[order[:7]])
        pickle.loads(pickle.dumps(xw)).write(order[7:], X[order[7:]])  # as on a worker
        da.store(da.from_array(Y, chunks=(5, -1, -1, -1)), yw, lock=False)
    gx, gy, _ = _read_store(path)
    assert np.array_equal(gx, X) and np.array_equal(gy, Y)
