"""Load training data (csbdeep ``.npz`` or caredask Zarr store) like csbdeep, without TensorFlow."""

from __future__ import annotations

import math
import operator
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..axes import axes_check_and_normalize
from ..errors import AxesError, FormatError, InputError, SourceNotFoundError

__all__ = ["load_training_data"]

Pair = tuple[np.ndarray, np.ndarray]


def _missing_source(path: Path) -> SourceNotFoundError:
    """A SourceNotFoundError for ``path`` with a hint about likely intended files."""
    partial = path.with_name(path.name + ".partial")
    hint = "check the path"
    if partial.exists():
        hint = (
            f"only {str(partial)!r} exists: writing the store was interrupted; "
            "regenerate the training data"
        )
    elif path.suffix != ".npz" and path.with_suffix(".npz").is_file():
        hint = f"did you mean {str(path.with_suffix('.npz'))!r}? (save_training_data adds .npz)"
    return SourceNotFoundError(f"training data {str(path)!r} does not exist; {hint}")


def _open_zarr(path: Path) -> tuple[Any, Any, Any]:
    """Open a caredask store lazily: ``(X, Y, stored axes)`` as zarr arrays."""
    try:
        group = zarr.open_group(path, mode="r")
        attrs = group.attrs.asdict()
        X, Y = group["X"], group["Y"]
    except (FileNotFoundError, KeyError, ValueError, TypeError) as e:
        raise FormatError(
            f"{str(path)!r} is not a caredask training data store (Zarr group with arrays X and "
            f"Y): {e}; pass a .npz file or a store written by caredask"
        ) from None
    if attrs.get("complete") is not True:
        raise FormatError(
            f"training data store {str(path)!r} is incomplete (its writing was interrupted, "
            "'complete' is not set); regenerate the training data"
        )
    return X, Y, attrs.get("axes")


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """Shape and dtype an ``.npy`` stream declares (``None`` for header versions >= 3)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        return None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _check_npz_sizes(path: Path, keys: tuple[str, ...]) -> None:
    """Refuse members whose header declares more bytes than the member holds (no allocation)."""
    with zipfile.ZipFile(path) as zf:
        members = {Path(n).stem: n for n in zf.namelist() if n.endswith(".npy")}
        for key in keys:
            if key not in members:
                continue
            info = zf.getinfo(members[key])
            with zf.open(info) as fh:
                header = _npy_header(fh)
                data_bytes = info.file_size - fh.tell()
            if header is None:
                continue
            shape, dtype = header
            declared = math.prod(shape) * dtype.itemsize
            if declared > data_bytes:
                raise FormatError(
                    f"{str(path)!r}: member {key!r} declares shape {shape} of {dtype} "
                    f"({declared} bytes) but holds only {data_bytes} bytes of data; the file is "
                    "truncated or damaged: regenerate the training data"
                )


def _open_npz(path: Path) -> tuple[Any, Any, Any]:
    """Read ``X``, ``Y`` and ``axes`` (``None`` if absent) of a ``.npz`` file."""
    try:
        _check_npz_sizes(path, ("X", "Y", "axes"))
        with np.load(path, allow_pickle=False) as f:
            files = list(f.files)
            arrays = {k: f[k] for k in ("X", "Y", "axes") if k in files}
    except FormatError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise FormatError(
            f"cannot read training data {str(path)!r} as .npz ({e}); pass a .npz file written "
            "by save_training_data or a caredask .zarr store"
        ) from None
    if "X" not in arrays or "Y" not in arrays:
        raise FormatError(
            f"{str(path)!r} holds keys {files}, not X and Y; pass a file written by "
            "save_training_data"
        )
    axes = arrays["axes"].item() if "axes" in arrays else None
    return arrays["X"], arrays["Y"], axes


def _open(file: str | os.PathLike[str]) -> tuple[Any, Any, Any]:
    """Dispatch on the kind of ``file``: a directory is a Zarr store, a file an ``.npz``."""
    if not isinstance(file, str | os.PathLike):
        raise InputError(f"file must be a str or pathlib.Path, got {type(file).__name__}")
    path = Path(file)
    if path.is_dir():
        return _open_zarr(path)
    if path.is_file():
        return _open_npz(path)
    raise _missing_source(path)


def _check_axes(axes: Any, ndim: int, file: Any) -> str:
    """Normalise ``axes`` and check it fits ``ndim`` dimensions and has a channel."""
    if axes is None:
        raise AxesError(f"{str(file)!r} stores no axes; pass axes=, e.g. axes='SCYX'")
    axes = axes_check_and_normalize(str(axes))
    if len(axes) != ndim:
        raise AxesError(
            f"axes {axes!r} of {str(file)!r} has {len(axes)} letters but X has {ndim} dimensions; "
            "pass axes= with one letter per dimension"
        )
    if "C" not in axes:
        raise AxesError(
            f"axes {axes!r} of {str(file)!r} has no channel axis 'C'; pass axes= naming the "
            "channel dimension (patches need a channel axis, possibly of size 1)"
        )
    return axes


def _check_counts(n_total: int, n_images: Any, validation_split: float) -> tuple[int, int]:
    """Return ``(n_images, n_val)`` after checking both arguments."""
    if n_images is None:
        n_images = n_total
    try:
        n_images = operator.index(n_images)
    except TypeError:
        raise InputError(f"n_images must be an int or None, got {n_images!r}") from None
    if not 0 < n_images <= n_total:
        raise InputError(
            f"n_images must be in 1..{n_total} (the number of patches), got {n_images}"
        )
    if not 0 <= validation_split < 1:
        raise InputError(f"validation_split must be in [0, 1), got {validation_split}")
    n_val = int(round(n_images * validation_split))  # noqa: RUF046 (numpy floats)
    if validation_split > 0 and not 0 < n_val < n_images:
        raise InputError(
            f"validation_split={validation_split} of {n_images} images gives {n_val} validation "
            f"and {n_images - n_val} training images; both must be > 0: change validation_split "
            "or n_images"
        )
    return n_images, n_val


def _move_channel(x: np.ndarray, channel: int, channel_last: bool) -> np.ndarray:
    return np.moveaxis(x, channel, -1 if channel_last else 1)


def _report(X: np.ndarray, Y: np.ndarray, n_val: int, axes: str) -> None:
    """Print a short summary of the loaded data."""
    c = axes.index("C")
    size = tuple(n for a, n in zip(axes, X.shape, strict=True) if a in "TZYX")
    print(f"training images:   {len(X)}")
    print(f"validation images: {n_val}")
    print(f"image size ({len(size)}D):   {size}")
    print(f"axes:              {axes}")
    print(f"channels in / out: {X.shape[c]} / {Y.shape[c]}")


def load_training_data(
    file: str | os.PathLike[str],
    validation_split: float = 0,
    axes: str | None = None,
    n_images: int | None = None,
    verbose: bool = False,
    *,
    channel_last: bool = True,
) -> tuple[Pair, Pair | None, str]:
    """Load training patches like ``csbdeep.io.load_training_data``, without TensorFlow.

    Parameters
    ----------
    file : str or os.PathLike
        A ``.npz`` file (csbdeep's or caredask's) or a complete caredask ``.zarr`` store.
    validation_split : float, default 0
        Fraction in ``[0, 1)`` of the loaded images used for validation: the last
        ``int(round(n_images * validation_split))`` of them, without shuffling.
    axes : str, optional
        Axes of ``X``, overriding the stored ones; must contain ``'C'``.
    n_images : int, optional
        Load only the first ``n_images`` patches (from a Zarr store, only those are read).
    verbose : bool, default False
        Print a summary.
    channel_last : bool, default True
        Move the channel axis last (TensorFlow's ``channels_last``, e.g. ``'SYXC'``); with
        ``False`` it goes right after the sample axis (``'SCYX'``).

    Returns
    -------
    tuple
        ``((X, Y), (X_val, Y_val) or None, axes)``; numpy arrays, validation ``None`` when
        ``validation_split == 0``.

    Raises
    ------
    SourceNotFoundError
        ``file`` does not exist.
    FormatError
        Unreadable file, incomplete store, or ``X``/``Y`` that do not match.
    AxesError
        Missing or invalid axes, or no channel axis.
    InputError
        ``n_images`` or ``validation_split`` out of range.
    """
    X, Y, stored_axes = _open(file)
    axes = _check_pair(X, Y, stored_axes if axes is None else axes, file)
    n_images, n_val = _check_counts(X.shape[0], n_images, validation_split)
    X, Y = np.asarray(X[:n_images]), np.asarray(Y[:n_images])
    train, val, out_axes = _split(X, Y, axes, n_val, channel_last)
    if verbose:
        _report(train[0], train[1], n_val, out_axes)
    return train, val, out_axes


def _split(
    X: np.ndarray, Y: np.ndarray, axes: str, n_val: int, channel_last: bool
) -> tuple[Pair, Pair | None, str]:
    """Training and validation pairs (the last ``n_val``), channel moved; their axes."""
    c = axes.index("C")
    rest = axes.replace("C", "")
    out_axes = rest + "C" if channel_last else rest[:1] + "C" + rest[1:]
    n_train = len(X) - n_val
    train = (
        _move_channel(X[:n_train], c, channel_last),
        _move_channel(Y[:n_train], c, channel_last),
    )
    val = None
    if n_val > 0:
        val = (
            _move_channel(X[n_train:], c, channel_last),
            _move_channel(Y[n_train:], c, channel_last),
        )
    return train, val, out_axes


def _check_pair(X: Any, Y: Any, axes: str | None, file: str | os.PathLike[str]) -> str:
    """The checked axes of ``X``; refuses ``X`` and ``Y`` of different dimensions or counts."""
    if X.ndim != Y.ndim:
        raise FormatError(
            f"X and Y of {str(file)!r} differ in dimensions ({X.shape} vs {Y.shape}); "
            "regenerate the training data"
        )
    axes = _check_axes(axes, X.ndim, file)
    if X.shape[0] != Y.shape[0]:
        raise FormatError(
            f"X and Y of {str(file)!r} hold different numbers of patches ({X.shape[0]} vs "
            f"{Y.shape[0]}); regenerate the training data"
        )
    return axes
