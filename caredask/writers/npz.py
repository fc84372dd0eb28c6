"""csbdeep-compatible ``.npz`` training data, written atomically.

The file holds the uncompressed arrays ``X``, ``Y`` and ``axes`` (a 0-d unicode array): the keys,
dtypes and values ``csbdeep.io.save_training_data`` writes, so ``csbdeep.io.load_training_data``
and :func:`caredask.writers.load.load_training_data` read it unchanged.
"""

from __future__ import annotations

import glob
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from ..axes import axes_check_and_normalize
from ..errors import AxesError, InputError

__all__ = [
    "STALE_AFTER_S",
    "atomic_savez",
    "npz_path",
    "remove_stale_temps",
    "save_training_data",
]


def npz_path(file: str | os.PathLike[str]) -> Path:
    """Return the path csbdeep saves ``file`` to: its last suffix replaced by ``.npz``.

    Parameters
    ----------
    file : str or os.PathLike
        Requested file name, e.g. ``'my.training.data'``.

    Returns
    -------
    Path
        ``Path(file).with_suffix('.npz')``, e.g. ``my.training.npz``.

    Raises
    ------
    InputError
        ``file`` is not a str or path.
    """
    if not isinstance(file, str | os.PathLike):
        raise InputError(
            f"file must be a str or pathlib.Path, got {type(file).__name__} ({file!r}); "
            "pass a file name such as 'data/my_training_data.npz'"
        )
    path = Path(file)
    if path.name in ("", ".", ".."):
        raise InputError(f"file {str(file)!r} names no file; pass e.g. 'data/training.npz'")
    return path.with_suffix(".npz")


STALE_AFTER_S = 24 * 3600
"""A temporary file of another host is taken as abandoned after this many seconds."""


def _temp_name(path: Path) -> Path:
    """``.<name>.<host>-<pid>.<random>.tmp`` next to ``path``: who writes it is in the name."""
    host = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
    return path.with_name(f".{path.name}.{host}-{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _abandoned(tmp: Path, stem: str) -> bool:
    """Whether a temporary file of ``stem`` was left by a writer that is gone."""
    owner = tmp.name[len(stem) :].split(".", 1)[0]  # '<host>-<pid>' or the old '<random>'
    host, _, pid = owner.rpartition("-")
    here = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
    if host == here and pid.isdigit():
        return int(pid) != os.getpid() and not psutil.pid_exists(int(pid))
    try:
        return time.time() - tmp.stat().st_mtime > STALE_AFTER_S
    except FileNotFoundError:
        return False


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temporary files an interrupted write of ``path`` left behind.

    A temporary file is stale when the process that wrote it (named in the file name) no longer
    runs on this host; one written from another host (a shared folder) when it has not changed
    for :data:`STALE_AFTER_S` seconds.  A write in progress is never touched.

    Returns
    -------
    list of Path
        The files removed.
    """
    stem = f".{path.name}."
    removed = []
    for tmp in sorted(path.parent.glob(f"{glob.escape(stem)}*.tmp")):
        if _abandoned(tmp, stem):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_savez(path: Path, **arrays: Any) -> None:
    """``np.savez`` to ``path`` through a temporary sibling file and ``os.replace``.

    A crash or an exception leaves either the old file (if any) or the complete new one, never a
    partial ``.npz``; the temporary file is removed on error, and a temporary file a killed
    run left (see :func:`remove_stale_temps`) is removed by the next write of the same path.

    Parameters
    ----------
    path : Path
        Destination file (overwritten if it exists).
    **arrays
        Arrays to store, by key.
    """
    if path.parent.is_dir():
        remove_stale_temps(path)
    tmp = _temp_name(path)
    # O_EXCL: never clobber; mode 0o666 lets the umask decide, as for a plain open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_training_data(file: str | os.PathLike[str], X: Any, Y: Any, axes: str) -> Path:
    """Save training patches as csbdeep does, atomically.

    Parameters
    ----------
    file : str or os.PathLike
        Destination; its last suffix is replaced by ``.npz`` (``'my.training.data'`` becomes
        ``'my.training.npz'``). Parent directories are created; an existing file is replaced.
    X, Y : array_like
        Source and target patches; saved with their dtypes, uncompressed.
    axes : str
        Axes of ``X`` (e.g. ``'SCYX'``); normalised to upper case, ``len(axes) == X.ndim``.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    InputError
        ``file`` is not a str or path.
    AxesError
        ``axes`` is invalid or does not match ``X.ndim``.
    """
    path = npz_path(file)
    X, Y = np.asarray(X), np.asarray(Y)
    axes = axes_check_and_normalize(axes)
    if len(axes) != X.ndim:
        raise AxesError(
            f"axes {axes!r} has {len(axes)} letters but X has {X.ndim} dimensions "
            f"(shape {X.shape}) when saving {str(path)!r}: give one letter per dimension"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, X=X, Y=Y, axes=np.asarray(axes))
    return path
