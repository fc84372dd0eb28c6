"""Dispatch of :func:`open_images` to the loader that understands a source."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, SourceNotFoundError
from .base import LazyImage
from .discover import check_not_mixed, file_uri_to_path, list_folder

__all__ = ["READERS", "Loader", "open_images", "register_loader"]

Opener = Callable[..., list[LazyImage]]
Probe = Callable[[Any, dict[str, Any]], bool]


@dataclass(frozen=True)
class Loader:
    """A named source kind: ``probe(source, options)`` says yes, ``open`` reads metadata."""

    name: str
    probe: Probe
    open: Opener


_LOADERS: list[Loader] = []
# Modules whose import registers built-in loaders, in priority order.
_BUILTIN_MODULES = (
    "caredask.loaders.arrays",
    "caredask.loaders.tiff",
)
_OPTIONAL_MODULES = (
    "caredask.loaders.custom",
    "caredask.loaders.zarrs",
    "caredask.loaders.czi",
    "caredask.loaders.bioimage",
)
READERS = (None, "bioio")
"""Values of ``open_images(..., reader=...)``: automatic, or every file through bioio."""
_loaded = False
_load_lock = threading.Lock()


def register_loader(name: str, probe: Probe, open: Opener, *, first: bool = False) -> None:
    """Add a source kind; ``first=True`` makes it win over the built-ins."""
    loader = Loader(name, probe, open)
    _LOADERS[:] = [lo for lo in _LOADERS if lo.name != name]
    if first:
        _LOADERS.insert(0, loader)
    else:
        _LOADERS.append(loader)


def _ensure_builtins() -> None:
    global _loaded
    if _loaded:
        return
    with _load_lock:  # threads opening sources at once must all see every loader
        if _loaded:
            return
        for mod in (*_BUILTIN_MODULES, *_OPTIONAL_MODULES):
            importlib.import_module(mod)
        _loaded = True


def _is_file_uri(x: Any) -> bool:
    return isinstance(x, str) and x.lower().startswith("file://")


def _is_pathlike(x: Any) -> bool:
    return isinstance(x, str | os.PathLike)


def _open_folder(folder: Path, axes: str | None, **options: Any) -> list[LazyImage]:
    """Every readable file and Zarr store of a folder, in natural order (dotfiles and other
    sub-folders skipped)."""
    take = lambda f: any(lo.probe(f, options) for lo in _LOADERS)  # noqa: E731
    readable = list_folder(folder, take, stores=True)
    if not readable:
        raise SourceNotFoundError(
            f"{folder}: no image files caredask can read (TIFF, Zarr, CZI, ...); check the folder"
        )
    images: list[LazyImage] = []
    for f in readable:
        images.extend(open_images(f, axes, **options))
    return images


def open_images(source: Any, axes: str | None = None, **options: Any) -> list[LazyImage]:
    """Open every image of a source lazily.

    Parameters
    ----------
    source : array, path, URI or list of them
        A numpy or dask array (one image), a list of arrays, a TIFF file, a directory of
        images, or a list of paths.  Further kinds come from registered loaders.
    axes : str, optional
        Axes of each image (letters of ``STCZYX``); taken from the file's metadata when omitted
        and the format has them.
    **options
        Passed to the loader (e.g. ``chunks=``, ``pattern=``).  ``reader='bioio'`` sends every
        file (also TIFF and CZI) through bioio's plugins (``pip install caredask[bioio]``);
        by default only extensions no native loader reads (``.dv``, ``.nd2``, ``.lif``, ...)
        go there.

    Returns
    -------
    list of LazyImage
        One entry per image, in a documented, deterministic order.  No pixel is read.

    Raises
    ------
    SourceNotFoundError
        A path that does not exist.
    InputError
        A source of a kind no loader understands, or an unknown ``reader``.
    MissingDependencyError
        The optional package a file needs is not installed (the message names it).
    """
    _ensure_builtins()
    reader = options.pop("reader", None)
    if reader not in READERS:
        raise InputError(
            f"{source}: reader={reader!r} is not known; use reader='bioio' (every file through "
            "bioio's plugins) or leave it out (automatic)"
        )
    if reader == "bioio":
        from .bioimage import open_bioio

        return open_bioio(source, axes, **options)
    for loader in _LOADERS:
        if loader.probe(source, options):
            return loader.open(source, axes, **options)
    return _open_unclaimed(source, axes, options)


def _open_unclaimed(source: Any, axes: str | None, options: dict[str, Any]) -> list[LazyImage]:
    """A source no loader claimed: a list, a ``file://`` URI or a folder, else an error."""
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        check_not_mixed(source)
        images: list[LazyImage] = []
        for s in source:
            images.extend(open_images(s, axes, **options))
        return images
    if _is_file_uri(source):  # e.g. file:///data/my%20images/x.tif for a file loader
        return open_images(Path(file_uri_to_path(source)), axes, **options)
    if _is_pathlike(source) and Path(source).is_dir():
        return _open_folder(Path(source), axes, **options)
    if _is_pathlike(source) and "://" not in str(source) and not Path(source).exists():
        raise SourceNotFoundError(
            f"{source}: no such file or directory; check the path (relative paths are taken "
            f"from {os.getcwd()})"
        )
    raise InputError(
        f"{source!r}: caredask cannot read this kind of source ({type(source).__name__}); "
        "give a numpy/dask array, a TIFF file or folder, or a supported store"
    )
