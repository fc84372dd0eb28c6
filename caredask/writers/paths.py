"""One rule for every output: check where training data will go *before* computing it.

:func:`check_output_path` is called at the start of a job (API and command line alike), so a
name that exists, a parent that is a file or a directory that cannot be written is refused in
a second, not after every patch has been computed.  The rule is the same for ``.npz`` files and
``.zarr`` stores: an existing output is refused unless the caller asked to replace it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from .npz import npz_path
from .store_files import is_caredask_store

__all__ = ["check_output_path", "is_zarr_output"]


def is_zarr_output(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Zarr store (``*.zarr``) rather than a ``.npz`` file."""
    return os.fspath(path).rstrip("/\\").endswith(".zarr")


def _hint(cli: bool) -> tuple[str, str]:
    """How to ask for replacement, and how to choose another name, on the CLI or the API."""
    if cli:
        return "pass --overwrite", "choose another --output"
    return "pass overwrite=True", "choose another save_file"


def _check_existing(path: Path, zarr_store: bool, overwrite: bool, cli: bool) -> None:
    replace, other = _hint(cli)
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise InputError(f"{path} exists; {replace} to replace it, or {other}")
    if path.is_symlink():
        raise InputError(
            f"{path} is a symbolic link; caredask replaces only files and stores it wrote: "
            f"remove the link yourself or {other}"
        )
    if zarr_store:
        empty = path.is_dir() and not any(path.iterdir())
        if not (empty or is_caredask_store(path)):
            raise InputError(
                f"refusing to overwrite {path}: it is not a caredask training data store (nor "
                f"an empty directory), so it may hold other data; remove it yourself or {other}"
            )
    elif not path.is_file():
        raise InputError(
            f"{path} is a directory, not a .npz file; caredask will not replace a directory "
            f"with a file: remove it yourself or {other}"
        )


def _check_parent(path: Path, cli: bool) -> None:
    _, other = _hint(cli)
    parent = path.absolute().parent
    while not os.path.lexists(parent):  # missing folders are created, down from here
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(
            f"{path}: {parent} is a file, not a folder, so nothing can be written below it; {other}"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{path}: the folder {parent} is not writable (read-only or no permission); "
            f"{other} in a folder you can write to"
        )


def check_output_path(path: str | os.PathLike[str], overwrite: bool, *, cli: bool = False) -> Path:
    """Check an output location before any work is done; return the path to write.

    Parameters
    ----------
    path : str or os.PathLike
        ``*.zarr`` for a Zarr store; anything else is a ``.npz`` file whose last suffix is
        replaced by ``.npz`` (as csbdeep's ``save_training_data`` does).
    overwrite : bool
        Whether an existing output may be replaced.  Even then only a regular file (``.npz``)
        or a caredask store or an empty directory (``.zarr``) is replaced.
    cli : bool, default False
        Word the hints for the command line (``--overwrite``, ``--output``) and require the
        name to end in ``.npz`` or ``.zarr``.

    Returns
    -------
    Path
        The path that will be written (``x.npz`` for ``x.data``).

    Raises
    ------
    InputError
        Not a local path; the output exists and ``overwrite`` is false, or it exists and is
        not something caredask replaces; a parent is a file; the folder cannot be written; a
        leftover ``<store>.partial`` that is not caredask's; with ``cli``, another suffix.
    """
    if not isinstance(path, str | os.PathLike):
        raise InputError(
            f"the output must be a str or pathlib.Path, got {type(path).__name__} ({path!r})"
        )
    if "://" in os.fspath(path):
        raise InputError(
            f"{os.fspath(path)}: outputs must be local paths (they are renamed into place when "
            "complete); write locally and copy the result afterwards"
        )
    zarr_store = is_zarr_output(path)
    if cli and not zarr_store and Path(path).suffix != ".npz":
        raise InputError(f"--output {path}: use a file name ending in .npz or .zarr")
    out = Path(os.fspath(path).rstrip("/\\")) if zarr_store else npz_path(path)
    _check_parent(out, cli)
    _check_existing(out, zarr_store, overwrite, cli)
    partial = out.with_name(out.name + ".partial")
    if zarr_store and os.path.lexists(partial) and not is_caredask_store(partial):
        raise InputError(
            f"{partial} exists and is not an interrupted caredask store; caredask needs this "
            f"name for its temporary store: remove it or {_hint(cli)[1]}"
        )
    return out
