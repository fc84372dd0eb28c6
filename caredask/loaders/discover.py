"""Source discovery: what a path or URI is, and which files of a folder a loader takes.

One home for the questions every loader (and the dataset index) asks before opening anything:

* :func:`is_uri` / :func:`file_uri_to_path` / :func:`check_not_mixed`: URIs, ``file://`` URIs
  and lists that must be all paths or all URIs;
* :func:`is_zarr_path`: whether a local path belongs to a Zarr store (:data:`ZARR_MARKERS`);
* :func:`matches` / :func:`list_folder`: glob patterns and folder listings in natural order
  (:func:`natural_key`: ``'2'`` before ``'10'``), hidden entries skipped.

Nothing here reads pixels or metadata beyond the directory entries.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import unquote

from ..errors import InputError

__all__ = [
    "ZARR_MARKERS",
    "check_not_mixed",
    "file_uri_to_path",
    "is_uri",
    "is_zarr_path",
    "list_folder",
    "matches",
    "natural_key",
]

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
"""Metadata files whose presence makes a directory a Zarr (v3 or v2) store, group or array."""


def natural_key(s: str) -> list[Any]:
    """Sort key that puts ``'2'`` before ``'10'``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def is_uri(source: Any) -> TypeGuard[str]:
    """Whether ``source`` is a URI string (``scheme://...``, ``file://`` included)."""
    return isinstance(source, str) and "://" in source


def file_uri_to_path(uri: str) -> str:
    """The local path of a ``file://`` URI, percent-decoded.

    ``file:///abs/my%20data/x.zarr`` -> ``/abs/my data/x.zarr`` (``Path.as_uri()`` writes a
    space as ``%20``); ``file://localhost/abs/x`` -> ``/abs/x``; the relative form
    ``file://rel/x`` that zarr's ``store_path`` prints -> ``rel/x``.
    """
    rest = uri[len("file://") :]
    if rest.lower().startswith("localhost/"):
        rest = rest[len("localhost") :]
    return unquote(rest)


def check_not_mixed(sources: Sequence[Any]) -> None:
    """Refuse a list whose path-like entries mix local paths and URIs.

    Raises
    ------
    InputError
        Some entries are URIs and others local paths.
    """
    uris = [s for s in sources if is_uri(s)]
    paths = [s for s in sources if isinstance(s, str | os.PathLike) and not is_uri(s)]
    if uris and paths:
        raise InputError(
            "a list of sources must be all paths or all URIs, but this one mixes paths and URIs "
            f"({os.fspath(paths[0])!r}, ... and {uris[0]!r}, ...); write every entry the same "
            "way, e.g. all as 'file:///abs/x.zarr/group' URIs or all as paths"
        )


def is_zarr_path(path: Path) -> bool:
    """Whether a local path is (inside) a Zarr store.

    Yes for a path with a ``*.zarr`` component (any case) and for a directory holding one of
    :data:`ZARR_MARKERS`.
    """
    if any(part.lower().endswith(".zarr") for part in path.parts):
        return True
    return path.is_dir() and any((path / m).exists() for m in ZARR_MARKERS)


def matches(name: str, pattern: str) -> bool:
    """``fnmatch`` of a file name, case-sensitive except for the name's last suffix.

    ``'img.TIF'`` matches ``'*.tif'``; ``'IMG.tif'`` does not match ``'img*'``.
    """
    stem, dot, suffix = name.rpartition(".")
    return fnmatch.fnmatchcase(name, pattern) or (
        bool(dot) and fnmatch.fnmatchcase(f"{stem}.{suffix.lower()}", pattern)
    )


def list_folder(
    folder: Path,
    take: Callable[[Path], bool],
    *,
    recursive: bool = False,
    stores: bool = False,
) -> list[Path]:
    """The entries of ``folder`` that ``take``, in natural order of their names.

    Parameters
    ----------
    folder : Path
        The folder to list; entries whose name starts with ``.`` are skipped (and not entered).
    take : callable
        ``take(path) -> bool`` for each candidate entry.
    recursive : bool
        Descend into sub-folders (depth first: a sub-folder's entries stand where it does).
    stores : bool
        Zarr store directories (:func:`is_zarr_path`) are candidate entries themselves and are
        not descended into; otherwise only regular files are candidates.

    Returns
    -------
    list of Path
        Possibly empty; the caller says what an empty listing means.
    """
    found: list[Path] = []
    for p in sorted(folder.iterdir(), key=lambda q: natural_key(q.name)):
        if p.name.startswith("."):
            continue
        if p.is_file() or (stores and p.is_dir() and is_zarr_path(p)):
            if take(p):
                found.append(p)
        elif recursive and p.is_dir():
            found.extend(list_folder(p, take, recursive=True, stores=stores))
    return found
