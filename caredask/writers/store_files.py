"""A training store on disk: recognising one, refusing a destination, replacing it safely.

A caredask store is a Zarr v3 group whose ``caredask`` attribute has ``kind`` equal to
:data:`STORE_KIND`; everything here asks zarr (not the files) what a directory holds.  Only
caredask's own stores (or empty directories) are ever replaced or removed, and a replacement
interrupted between its two renames is finished on the next run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import InputError

__all__ = [
    "STORE_KIND",
    "check_destination",
    "is_caredask_store",
    "is_complete",
    "recover_replacement",
    "remove_stale_partial",
    "store_attrs",
    "stored_rows",
]

STORE_KIND = "caredask-training-data"
"""Value of ``attrs['caredask']['kind']`` that identifies a caredask training data store."""


def store_attrs(path: Path) -> dict[str, Any]:
    """The attributes of the Zarr group at ``path`` (empty if there is none)."""
    if not path.is_dir():
        return {}
    try:
        return dict(zarr.open_group(zarr.storage.LocalStore(path, read_only=True), mode="r").attrs)
    except Exception:  # not a Zarr group, or unreadable metadata: not a caredask store
        return {}


def is_caredask_store(path: Path) -> bool:
    """True if ``path`` is a directory holding a caredask training data group."""
    record = store_attrs(path).get("caredask")
    return isinstance(record, dict) and record.get("kind") == STORE_KIND


def stored_rows(arr: zarr.Array) -> np.ndarray:
    """Which rows (chunks along the first axis) of ``arr`` are present in its store."""
    from zarr.core.sync import sync

    store, prefix = arr.store_path.store, arr.store_path.path

    async def keys() -> set[str]:
        return {k async for k in store.list_prefix(f"{prefix}/")}

    present = sync(keys())
    zeros = (0,) * (arr.ndim - 1)
    return np.array(
        [
            f"{prefix}/{arr.metadata.encode_chunk_key((i, *zeros))}" in present
            for i in range(arr.shape[0])
        ],
        dtype=bool,
    )


def check_destination(path: Path, overwrite: bool) -> None:
    """Refuse an existing ``path`` unless ``overwrite`` and it is a caredask store or empty."""
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise InputError(
            f"training data store {str(path)!r} already exists; pass overwrite=True to replace "
            "it or choose another path"
        )
    empty_dir = path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    if not (empty_dir or (is_caredask_store(path) and not path.is_symlink())):
        raise InputError(
            f"refusing to overwrite {str(path)!r}: it is not a caredask training data store "
            "(nor an empty directory), so it may hold other data; remove it yourself or choose "
            "another path"
        )


def recover_replacement(path: Path) -> None:
    """Finish a replacement a crash interrupted between its two renames.

    Replacing ``path`` renames the old store to ``.<name>.old-<id>`` and then the complete
    ``<name>.partial`` to ``path``.  A crash in between leaves no ``path``: the complete new
    store is moved in if it is there, else the old one is moved back; leftovers of a finished
    replacement are removed.
    """
    olds = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() else []
    if not olds:
        return
    partial = path.with_name(path.name + ".partial")
    if not os.path.lexists(path):
        if is_caredask_store(partial) and is_complete(partial):
            os.replace(partial, path)
        else:
            os.replace(olds.pop(), path)
    for old in olds:
        if is_caredask_store(old):
            shutil.rmtree(old)


def is_complete(path: Path) -> bool:
    return bool(store_attrs(path).get("complete"))


def remove_stale_partial(partial: Path) -> None:
    """Remove a leftover ``*.partial`` store of an interrupted run (only if it is ours)."""
    if not os.path.lexists(partial):
        return
    if is_caredask_store(partial) and not partial.is_symlink():
        shutil.rmtree(partial)
        return
    raise InputError(
        f"{str(partial)!r} exists and is not an interrupted caredask store; caredask needs this "
        "name for its temporary store: remove it or choose another path"
    )
