"""The input units of an index: files, Zarr store directories, and the matching entries of folders.

A unit is what the index hashes as one piece of content (see :mod:`caredask.dataset.index`);
folders are listed with :func:`caredask.loaders.discover.list_folder`, stores are never entered.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SourceNotFoundError
from ..loaders.bioimage import VENDOR_PLUGINS
from ..loaders.discover import is_uri, is_zarr_path, list_folder, matches

__all__ = ["DEFAULT_SUFFIXES", "Unit", "expand_sources"]

DEFAULT_SUFFIXES = tuple(dict.fromkeys((".tif", ".tiff", ".czi", ".zarr", *VENDOR_PLUGINS)))
"""What a folder listing picks up when no pattern is given (case-insensitive suffixes; vendor
formats such as ``.dv``, ``.nd2``, ``.lif`` are read through bioio)."""


@dataclass(frozen=True)
class Unit:
    """One input unit: ``path`` (absolute) and its path ``rel`` relative to the given root."""

    path: str
    rel: str


def _listing_filter(pattern: str | None) -> Callable[[Path], bool]:
    if pattern is None:
        return lambda p: p.name.lower().endswith(DEFAULT_SUFFIXES)
    return lambda p: matches(p.name, pattern)


def expand_sources(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    pattern: str | None = None,
    recursive: bool = False,
) -> list[Unit]:
    """The units of some sources: files, store directories, and the matching entries of folders.

    Parameters
    ----------
    sources : path or sequence of paths
        Files, Zarr stores, folders (listed in natural order) or URIs.
    pattern : str, optional
        Glob pattern of the entries taken from folders (default: :data:`DEFAULT_SUFFIXES`:
        ``.tif``, ``.tiff``, ``.czi``, ``.zarr`` and the vendor formats bioio reads, any case).
        Explicitly named files are always taken.
    recursive : bool
        Descend into sub-folders (not into stores).

    Raises
    ------
    SourceNotFoundError
        A named path that does not exist.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    units: list[Unit] = []
    for s in sources:
        text = os.fspath(s)
        if is_uri(text):
            units.append(Unit(text, text.rstrip("/").rsplit("/", 1)[-1]))
            continue
        p = Path(text).expanduser().absolute()
        if not p.exists():
            raise SourceNotFoundError(
                f"{text}: no such file or directory; check the path (relative paths are taken "
                f"from {os.getcwd()})"
            )
        if p.is_dir() and not is_zarr_path(p):
            listed = list_folder(p, _listing_filter(pattern), recursive=recursive, stores=True)
            units.extend(Unit(str(f), f.relative_to(p).as_posix()) for f in listed)
        else:
            units.append(Unit(str(p), p.name))
    seen: set[str] = set()
    return [u for u in units if not (u.path in seen or seen.add(u.path))]  # type: ignore[func-returns-value]
