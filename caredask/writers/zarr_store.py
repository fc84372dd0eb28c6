"""Streaming Zarr v3 store for training patches.

Layout of a store (a Zarr v3 group)::

    <path>/zarr.json      attributes: axes, caredask (provenance record), complete
    <path>/X              float32 (n_patches, *x_shape), chunks (1, *x_shape)
    <path>/Y              float32 (n_patches, *y_shape), chunks (1, *y_shape)

One chunk per patch: writes of different rows never share a chunk, so concurrent writers need no
lock. The store is built in the sibling directory ``<path>.partial`` and renamed to ``<path>``
only by :meth:`TrainingDataWriter.close`, after every row was written; ``complete: true`` is set
only then. A killed run therefore leaves a ``*.partial`` directory, never a complete-looking store.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr
from numpy.typing import ArrayLike

from .. import __version__
from ..axes import axes_check_and_normalize
from ..errors import AxesError, InputError
from ..loaders.codecs import zarr_config, zarrs_enabled
from .provenance import check_json
from .store_files import (
    STORE_KIND,
    check_destination,
    is_caredask_store,
    recover_replacement,
    remove_stale_partial,
    stored_rows,
)

__all__ = [
    "STORE_KIND",
    "RowWriter",
    "TrainingDataWriter",
    "recover_replacement",
    "save_training_data_zarr",
]


class RowWriter:
    """Writes whole rows (patches) of an output array with caredask's codec pipeline.

    With ``zarrs`` in use its Rust pipeline encodes and writes the rows (several times faster
    than zarr-python's on these small chunks, ``benchmarks/bench_read_ratio.py``).  zarrs 0.2.3
    does not store a chunk equal to the fill value even with ``write_empty_chunks``, and a row
    without a chunk counts as never written (the store's completeness check), so rows equal to
    the fill value (0) are written again through zarr-python's pipeline.  Picklable: finishing
    tasks carry it to the workers.

    Parameters
    ----------
    array : zarr.Array
        The output array, opened with zarr-python's pipeline (``X`` or ``Y`` of a writer).
    """

    def __init__(self, array: zarr.Array) -> None:
        self.exact = array
        self.fast: zarr.Array | None = None
        if zarrs_enabled():
            with zarr_config():
                self.fast = zarr.open_array(array.store_path, mode="r+")

    def write(self, rows: np.ndarray, data: np.ndarray) -> None:
        """Store ``data[i]`` as row ``rows[i]`` (rows unique; ``data`` float32)."""
        (self.fast or self.exact).oindex[rows] = data
        if self.fast is not None:
            empty = ~data.reshape(len(rows), -1).any(axis=1)
            if empty.any():
                self.exact.oindex[rows[empty]] = data[empty]

    def __setitem__(self, key: tuple[slice, ...], data: np.ndarray) -> None:
        """``da.store`` target: ``key`` selects whole rows (its other slices are full)."""
        self.write(np.arange(*key[0].indices(self.exact.shape[0])), np.asarray(data))


def _local_path(path: str | os.PathLike[str]) -> Path:
    """Validate that ``path`` is a local file system path and return it."""
    if not isinstance(path, str | os.PathLike):
        raise InputError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
    if "://" in str(path):
        raise InputError(
            f"training data store {str(path)!r}: only local paths are supported (the store is "
            "renamed into place on close); write locally and copy it afterwards"
        )
    return Path(os.path.abspath(path))  # workers may have another working directory


class TrainingDataWriter:
    """Write training patches row by row (in any order, from any thread) into a Zarr v3 store.

    Parameters
    ----------
    path : str or os.PathLike
        Local destination directory (conventionally ``*.zarr``).
    n_patches : int
        Number of patches (rows) the store will hold.
    x_shape, y_shape : tuple of int
        Shape of one source and one target patch (without the sample axis).
    axes : str
        Axes of ``X`` including the leading sample axis, e.g. ``'SCZYX'``.
    overwrite : bool, default False
        Replace an existing store at ``path``. Even then only a caredask store or an empty
        directory is replaced, and only on :meth:`close`.
    attrs : dict, optional
        Provenance record (sources, patch size, seed, percentiles, coordinates, ...), stored as
        ``attrs['caredask']``; see :meth:`set_attrs`.
    job : dict, optional
        The arguments that determine every row (JSON).  With it, an interrupted ``.partial``
        store of the same job is reopened (``resumed`` is then True; see :meth:`done_records`)
        and one of another job is refused, naming the arguments that differ.
    resume : bool, default True
        With ``job``: reopen a matching ``.partial`` store; False discards it and starts over.

    Raises
    ------
    InputError
        Bad sizes, ``path`` exists (without ``overwrite``) or is not a caredask store.
    AxesError
        ``axes`` does not match the patch shapes.

    Notes
    -----
    Use it as a context manager: an exception inside the ``with`` block removes the temporary
    store, and a normal exit calls :meth:`close`. Writes are thread-safe for distinct rows; the
    arrays :attr:`X` and :attr:`Y` are picklable, so they can also be targets of ``da.store``
    (with dask chunks covering whole rows and ``lock=False``); so are :attr:`targets`, their
    :class:`RowWriter` pair (written with ``zarrs`` when it is in use), which :meth:`write`
    and the pipeline's finishing tasks use.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        n_patches: int,
        x_shape: tuple[int, ...],
        y_shape: tuple[int, ...],
        axes: str,
        *,
        overwrite: bool = False,
        attrs: dict[str, Any] | None = None,
        job: dict[str, Any] | None = None,
        resume: bool = True,
    ) -> None:
        self.path = _local_path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.n_patches = int(n_patches)
        x_shape, y_shape = tuple(map(int, x_shape)), tuple(map(int, y_shape))
        self.axes = axes_check_and_normalize(axes)
        self._overwrite = overwrite
        self._check_shapes(x_shape, y_shape)
        self._record: dict[str, Any] = check_json({"kind": STORE_KIND, **(attrs or {})})
        self._record.setdefault("caredask_version", __version__)
        recover_replacement(self.path)
        check_destination(self.path, overwrite)
        self._closed = False
        self.resumed = False
        if job is not None:
            self._record["job"] = check_json(job)
            self.resumed = resume and self._resume(job)
        if not self.resumed:
            remove_stale_partial(self.partial_path)
            self.partial_path.parent.mkdir(parents=True, exist_ok=True)
            self._group = zarr.open_group(
                self.partial_path,
                mode="w-",
                zarr_format=3,
                attributes=self._attributes(complete=False),
            )
            self.X = self._create("X", x_shape)
            self.Y = self._create("Y", y_shape)
        # opened once per writer (and per worker that unpickles them), not per write
        self.targets = (RowWriter(self.X), RowWriter(self.Y))

    def _resume(self, job: dict[str, Any]) -> bool:
        """Reopen an interrupted ``.partial`` store of the same job; refuse another job's."""
        if not (is_caredask_store(self.partial_path) and not self.partial_path.is_symlink()):
            return False
        group = zarr.open_group(self.partial_path, mode="r+", zarr_format=3)
        record = dict(group.attrs).get("caredask", {})
        old = record.get("job") if isinstance(record, dict) else None
        if not isinstance(old, dict) or "X" not in group or "Y" not in group:
            return False  # written by save_training_data_zarr: nothing to resume
        new = self._record["job"]
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            shown = ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in diff[:4])
            raise InputError(
                f"{str(self.partial_path)!r} holds an interrupted run with other arguments "
                f"({shown}); rerun with the same arguments to resume it, or start over with "
                "resume=False (command line: --restart)"
            )
        self._group = group
        x, y = group["X"], group["Y"]
        assert isinstance(x, zarr.Array) and isinstance(y, zarr.Array)
        self.X, self.Y = x, y
        return True

    def mark_done(self, index: int, record: dict[str, Any]) -> None:
        """Record that every row of image ``index`` is written (its record kept for resuming)."""
        progress = self._group.require_group("progress")
        progress.create_group(str(int(index)), attributes=check_json(record), overwrite=True)

    def done_records(self) -> dict[int, dict[str, Any]]:
        """Records of the images an interrupted run finished (see :meth:`mark_done`)."""
        if "progress" not in self._group:
            return {}
        progress = self._group["progress"]
        assert isinstance(progress, zarr.Group)
        return {int(name): dict(g.attrs) for name, g in progress.groups()}

    def _check_shapes(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
        """Validate the number of patches, the patch shapes and the axes."""
        if self.n_patches <= 0:
            raise InputError(f"n_patches must be positive, got {self.n_patches} for {self.path}")
        if len(self.axes) != 1 + len(x_shape):
            raise AxesError(
                f"axes {self.axes!r} has {len(self.axes)} letters but X patches have "
                f"{1 + len(x_shape)} dimensions (1 + len(x_shape={x_shape})): give one letter per "
                "dimension, the first for the samples"
            )
        if len(y_shape) != len(x_shape) or min(x_shape + y_shape, default=1) <= 0:
            raise InputError(
                f"patch shapes x_shape={x_shape} and y_shape={y_shape} for {self.path} must have "
                "the same number of dimensions and positive sizes (keep reduced axes as size 1)"
            )

    def _create(self, name: str, shape: tuple[int, ...]) -> zarr.Array:
        """Create one float32 array with one chunk per patch."""
        return self._group.create_array(
            name,
            shape=(self.n_patches, *shape),
            chunks=(1, *shape),
            dtype="float32",
            fill_value=0.0,
            dimension_names=list(self.axes),
            config={"write_empty_chunks": True},
        )

    def add_array(self, name: str, data: ArrayLike) -> None:
        """Store a small side array (e.g. patch coordinates) next to ``X`` and ``Y``."""
        if name in ("X", "Y"):
            raise InputError(f"{name!r} is reserved in {self.path}; choose another array name")
        arr = np.asarray(data)
        self._group.create_array(name, shape=arr.shape, dtype=arr.dtype, overwrite=True)[...] = arr

    def _attributes(self, complete: bool) -> dict[str, Any]:
        return {"axes": self.axes, "caredask": self._record, "complete": complete}

    def write(self, rows: ArrayLike, X: ArrayLike, Y: ArrayLike) -> None:
        """Write patches ``X[i], Y[i]`` to rows ``rows[i]`` (unique, any order).

        Parameters
        ----------
        rows : array_like of int
            Destination rows along the sample axis, each in ``[0, n_patches)``, no repeats.
        X, Y : array_like
            ``(len(rows), *x_shape)`` and ``(len(rows), *y_shape)``; cast to float32.

        Raises
        ------
        InputError
            The writer is closed, or rows or shapes do not fit.
        """
        if self._closed:
            raise InputError(f"writer for {self.path} is closed; open a new TrainingDataWriter")
        idx = self._check_rows(rows)
        for name, data, target in zip("XY", (X, Y), self.targets, strict=True):
            data = np.asarray(data, dtype=np.float32)
            row_shape = target.exact.shape[1:]
            if data.shape != (idx.size, *row_shape):
                raise InputError(
                    f"{name} has shape {data.shape}, expected {(idx.size, *row_shape)} "
                    f"for {idx.size} rows of {self.path}"
                )
            if idx.size:
                target.write(idx, data)

    def _check_rows(self, rows: ArrayLike) -> np.ndarray:
        """Return ``rows`` as int64 after checking they are 1-d, unique and in range."""
        idx = np.asarray(rows)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise InputError(f"rows must be a 1-d array of int, got {idx.dtype} {idx.shape}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_patches):
            raise InputError(
                f"rows must lie in [0, {self.n_patches}) for {self.path}; got "
                f"{idx.min()}..{idx.max()}"
            )
        if np.unique(idx).size != idx.size:
            raise InputError(f"rows must be unique when writing to {self.path}")
        return idx

    def set_attrs(self, **attrs: Any) -> None:
        """Merge ``attrs`` into the provenance record ``attrs['caredask']`` (JSON-serialisable).

        Raises
        ------
        InputError
            The writer is closed or a value cannot be stored as JSON.
        """
        if self._closed:
            raise InputError(f"writer for {self.path} is closed; set attributes before close()")
        self._record.update(check_json(attrs))
        self._record["kind"] = STORE_KIND
        self._group.attrs.put(self._attributes(complete=False))

    def missing_rows(self) -> np.ndarray:
        """Rows not yet written to both ``X`` and ``Y`` (from the chunks present in the store)."""
        done = np.ones(self.n_patches, dtype=bool)
        for name in ("X", "Y"):
            arr = self._group[name]
            assert isinstance(arr, zarr.Array)
            if arr.nchunks_initialized == arr.nchunks:  # one chunk per row, all there
                continue
            done &= stored_rows(arr)
        return np.flatnonzero(~done)

    def close(self) -> None:
        """Check every row was written, mark the store complete and move it to :attr:`path`.

        Raises
        ------
        InputError
            Rows are missing, or the destination appeared and cannot be replaced.
        """
        if self._closed:
            return
        missing = self.missing_rows()
        if missing.size:
            raise InputError(
                f"{missing.size} of {self.n_patches} patches were never written to {self.path} "
                f"(first missing rows: {missing[:10].tolist()}); write every row before close()"
            )
        check_destination(self.path, self._overwrite)
        if "progress" in self._group:
            del self._group["progress"]
        self._group.attrs.put(self._attributes(complete=True))
        old = None
        if os.path.lexists(self.path):
            old = self.path.with_name(f".{self.path.name}.old-{uuid.uuid4().hex}")
            os.replace(self.path, old)
        os.replace(self.partial_path, self.path)
        self._closed = True
        if old is not None:
            shutil.rmtree(old)

    def abort(self) -> None:
        """Discard the temporary store; the destination is left untouched."""
        self._closed = True
        shutil.rmtree(self.partial_path, ignore_errors=True)

    def __enter__(self) -> TrainingDataWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"TrainingDataWriter({str(self.path)!r}, n_patches={self.n_patches}, "
            f"X{tuple(self.X.shape)}, Y{tuple(self.Y.shape)}, axes={self.axes!r}, {state})"
        )


def save_training_data_zarr(
    path: str | os.PathLike[str],
    X: Any,
    Y: Any,
    axes: str,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Save whole ``X``/``Y`` arrays (numpy or dask) as a caredask Zarr v3 training data store.

    Parameters
    ----------
    path : str or os.PathLike
        Local destination directory, used as given (no suffix change).
    X, Y : numpy.ndarray or dask.array.Array
        Patches with the sample axis first; dask arrays are written block by block in parallel
        (rechunked to whole rows, ``da.store(..., lock=False)``), without loading them in memory.
    axes : str
        Axes of ``X``, e.g. ``'SCYX'``.
    attrs : dict, optional
        Provenance record stored as ``attrs['caredask']``.
    overwrite : bool, default True
        Replace an existing caredask store at ``path`` (like csbdeep's ``save_training_data``).

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    InputError, AxesError
        As for :class:`TrainingDataWriter`, or if ``X`` and ``Y`` differ in their number of rows.
    """
    if not (hasattr(X, "shape") and hasattr(Y, "shape")):
        X, Y = np.asarray(X), np.asarray(Y)
    if X.shape[:1] != Y.shape[:1] or X.ndim < 1:
        raise InputError(
            f"X {X.shape} and Y {Y.shape} must have the same number of patches along the first "
            f"axis to be saved to {str(path)!r}"
        )
    writer = TrainingDataWriter(
        path, X.shape[0], X.shape[1:], Y.shape[1:], axes, overwrite=overwrite, attrs=attrs
    )
    with writer:
        if hasattr(X, "dask") or hasattr(Y, "dask"):
            _store_dask(X, Y, writer)
        else:
            writer.write(np.arange(X.shape[0]), X, Y)
    return writer.path


def _store_dask(X: Any, Y: Any, writer: TrainingDataWriter) -> None:
    """Store dask ``X``/``Y`` blockwise, each block covering whole rows (= whole zarr chunks)."""
    import dask.array as da

    sources: list[Any] = []
    targets: list[Any] = list(writer.targets)
    for a in (X, Y):
        a = da.asarray(a).astype(np.float32)
        sources.append(a.rechunk({i: -1 for i in range(1, a.ndim)}))
    da.store(sources, targets, lock=False)
