"""``TrainingStore``: read training patches lazily, patch by patch, for any trainer.

A store wraps a caredask ``.zarr`` training data store (or a csbdeep ``.npz`` file) as a
map-style dataset: ``len(store)``, ``store[i]`` and ``store[i:j]`` give numpy ``(x, y)`` in
csbdeep's layout (``S`` first, then ``C``, e.g. ``'SCYX'``).  A Zarr store reads only the rows
asked for (one chunk per patch), so iterating a store of any size holds one patch at a time.
A ``.npz`` file cannot be read row by row: it is loaded whole on first access (per process).

The object is picklable and small: it carries the path and the selected rows, never an open
file; each process (e.g. a PyTorch ``DataLoader`` worker) opens the file on its first read.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from ..errors import FormatError, InputError
from .load import _check_axes, _missing_source, _open_npz, _open_zarr

__all__ = ["TrainingStore"]

Pair = tuple[np.ndarray, np.ndarray]


class TrainingStore:
    """Lazy, picklable view of training patches in a ``.zarr`` store or an ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        A complete caredask ``.zarr`` store (written by ``generate_training_data`` or
        ``caredask patches``) or an ``.npz`` file with ``X``, ``Y`` and ``axes``.
    rows : array_like of int, optional
        Rows of the file this store shows, in order (default: all). :meth:`split` sets it.

    Attributes
    ----------
    path : Path
        The file or store read.
    axes : str
        Axes of ``X`` and ``Y``, ``'S'`` first (e.g. ``'SCYX'``).

    Raises
    ------
    SourceNotFoundError
        ``path`` does not exist.
    FormatError
        Not a training data file, an incomplete store, or ``X`` and ``Y`` do not match.
    InputError
        ``rows`` out of range.

    Examples
    --------
    >>> store = TrainingStore("train.zarr")                    # doctest: +SKIP
    >>> x, y = store[0]                                        # doctest: +SKIP
    >>> train, val = store.split(validation=0.1, seed=0)       # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], rows: Any = None) -> None:
        if not isinstance(path, str | os.PathLike):
            raise InputError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
        self.path = Path(path)
        if not self.path.exists():
            raise _missing_source(self.path)
        self._is_zarr = self.path.is_dir()
        X, Y, axes = _open_zarr(self.path) if self._is_zarr else _open_npz(self.path)
        if tuple(X.shape[:1]) != tuple(Y.shape[:1]) or X.ndim != Y.ndim:
            raise FormatError(
                f"X {tuple(X.shape)} and Y {tuple(Y.shape)} of {str(self.path)!r} do not match "
                "(number of patches or dimensions); regenerate the training data"
            )
        self.axes = _check_axes(axes, X.ndim, self.path)
        self._n_file = int(X.shape[0])
        self.x_shape, self.y_shape = tuple(X.shape[1:]), tuple(Y.shape[1:])
        self._rows = None if rows is None else self._check_rows(rows)
        self._pid: int | None = None
        self._arrays: dict[str, Any] | None = None
        if not self._is_zarr:  # already read: keep it for this process
            self._pid, self._arrays = os.getpid(), {"X": X, "Y": Y}

    def _check_rows(self, rows: Any) -> np.ndarray:
        idx = np.asarray(rows)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise InputError(f"rows must be a 1-d array of int, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self._n_file):
            raise InputError(
                f"rows must lie in [0, {self._n_file}) for {str(self.path)!r}; got "
                f"{idx.min()}..{idx.max()}"
            )
        return idx.astype(np.int64)

    # ------------------------------------------------------------------ opening per process

    def _open(self) -> dict[str, Any]:
        """The file's arrays, opened (or loaded, for ``.npz``) once in the current process."""
        if self._arrays is None or self._pid != os.getpid():
            if self._is_zarr:
                group = zarr.open_group(self.path, mode="r")
                self._arrays = {name: group[name] for name in ("X", "Y")}
            else:
                X, Y, _ = _open_npz(self.path)
                self._arrays = {"X": X, "Y": Y}
            self._pid = os.getpid()
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"], state["_pid"] = None, None  # reopened lazily in the new process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ map-style dataset

    @property
    def rows(self) -> np.ndarray:
        """Rows of the file this store shows, in order."""
        return np.arange(self._n_file) if self._rows is None else self._rows

    def __len__(self) -> int:
        return self._n_file if self._rows is None else int(self._rows.size)

    def _file_rows(self, key: Any) -> int | slice | np.ndarray:
        """File rows for an int or slice of this store's rows."""
        n = len(self)
        if isinstance(key, slice):
            if self._rows is None:
                return slice(*key.indices(n))
            return self._rows[key]
        try:
            i = operator.index(key)
        except TypeError:
            raise InputError(
                f"TrainingStore indices are int or slice, got {type(key).__name__}"
            ) from None
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a store of {n} patches ({self.path})")
        i %= n
        return i if self._rows is None else int(self._rows[i])

    def __getitem__(self, key: int | slice) -> Pair:
        """``(x, y)`` as numpy float arrays: one patch (``x.shape == x_shape``) or a stack."""
        rows = self._file_rows(key)
        arrays = self._open()
        X, Y = arrays["X"], arrays["Y"]
        if isinstance(rows, np.ndarray) and self._is_zarr:
            return np.asarray(X.oindex[rows]), np.asarray(Y.oindex[rows])
        return np.asarray(X[rows]), np.asarray(Y[rows])

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    @property
    def X(self) -> da.Array:
        """Source patches as a lazy dask array (one block per patch for a ``.zarr`` store)."""
        return self._dask("X")

    @property
    def Y(self) -> da.Array:
        """Target patches as a lazy dask array (one block per patch for a ``.zarr`` store)."""
        return self._dask("Y")

    def _dask(self, name: str) -> da.Array:
        if self._is_zarr:
            a = da.from_zarr(str(self.path), component=name)
        else:
            a = da.from_array(self._open()[name], chunks=(1, *self._open()[name].shape[1:]))
        return a if self._rows is None else a[self._rows]

    # ------------------------------------------------------------------ provenance

    @property
    def provenance(self) -> dict[str, Any]:
        """The provenance record of a ``.zarr`` store (``{}`` for an ``.npz`` file)."""
        if not self._is_zarr:
            return {}
        record = zarr.open_group(self.path, mode="r").attrs.asdict().get("caredask", {})
        return dict(record) if isinstance(record, dict) else {}

    def _side(self, name: str) -> np.ndarray | None:
        if not self._is_zarr:
            return None
        group = zarr.open_group(self.path, mode="r")
        arr = group.get(name)
        if not isinstance(arr, zarr.Array):
            return None
        a = np.asarray(arr[...])
        return a if self._rows is None else a[self._rows]

    @property
    def patch_start(self) -> np.ndarray | None:
        """Start of each patch in its (transformed) image, ``(len, ndim)``; ``None`` if unknown."""
        return self._side("patch_start")

    @property
    def patch_image(self) -> np.ndarray | None:
        """Index of the image each patch came from (see ``provenance['images']``)."""
        return self._side("patch_image")

    # ------------------------------------------------------------------ split

    def split(
        self, validation: float = 0.1, seed: int = 0, by: str = "image"
    ) -> tuple[TrainingStore, TrainingStore]:
        """Split into ``(train, validation)`` stores over the same file.

        Parameters
        ----------
        validation : float, default 0.1
            Fraction in ``(0, 1)`` of images (``by='image'``) or patches (``by='patch'``) that
            go to the validation store (rounded; both stores must be non-empty).
        seed : int, default 0
            Seed of the random choice (``numpy.random.default_rng(seed)``).
        by : {'image', 'patch'}
            ``'image'``: no image contributes patches to both stores (needs ``patch_image``,
            i.e. a ``.zarr`` store); ``'patch'``: patches are split independently.

        Returns
        -------
        tuple of TrainingStore
            Each keeps the file's row order; ``patch_image`` says where each patch came from.

        Raises
        ------
        InputError
            Bad ``validation`` or ``by``, a store without ``patch_image`` split by image, or a
            split that leaves one side empty.
        """
        if by not in ("image", "patch"):
            raise InputError(f"split by={by!r}: use 'image' or 'patch'")
        if not 0 < validation < 1:
            raise InputError(f"split validation={validation!r} must be in (0, 1)")
        rng = np.random.default_rng(seed)
        rows = self.rows
        if by == "patch":
            val = np.zeros(rows.size, bool)
            val[rng.permutation(rows.size)[: self._n_val(rows.size, validation, "patches")]] = True
        else:
            image = self.patch_image
            if image is None:
                raise InputError(
                    f"{str(self.path)!r} records no patch_image (an .npz file), so it cannot be "
                    "split by image; use a .zarr store or split(by='patch')"
                )
            images = np.unique(image)
            chosen = rng.permutation(images)[: self._n_val(images.size, validation, "images")]
            val = np.isin(image, chosen)
        return TrainingStore(self.path, rows[~val]), TrainingStore(self.path, rows[val])

    def _n_val(self, n: int, validation: float, what: str) -> int:
        n_val = round(n * validation)
        if not 0 < n_val < n:
            raise InputError(
                f"split validation={validation} of the {n} {what} of {str(self.path)!r} gives "
                f"{n_val} for validation and {n - n_val} for training; both must be > 0: change "
                "validation (or split by='patch')"
            )
        return n_val

    def __repr__(self) -> str:
        return (
            f"TrainingStore({str(self.path)!r}, {len(self)} patches, x {self.x_shape}, "
            f"y {self.y_shape}, axes={self.axes!r})"
        )
