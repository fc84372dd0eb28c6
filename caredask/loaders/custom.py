"""Custom formats: a user read function (CAREamics' ``read_source_func`` + ``extension_filter``)
or a user chunked loader, opened as :class:`LazyImage` lists.

Two ways to plug a format in, chosen by the option given:

* ``read_source_func=f``: ``f(path, axes, **read_kwargs)`` is called once per file when opening
  and returns the image.  What it returns decides how lazy the image is:

  - a dask array stays as it is (lazy; rechunked only if ``chunks=`` is given);
  - a memory map (``np.load(p, mmap_mode='r')``, ``np.memmap``) becomes a reader that maps
    the file again in each task, so only the touched bytes are read;
  - another array-like with ``shape``, ``dtype`` and numpy-style slicing (a ``zarr.Array``,
    ...) stays lazy and sits in the graph itself, so it must pickle for process-based
    schedulers (an open h5py dataset does not: use ``chunked_loader`` instead);
  - a numpy array (or anything else) is wrapped as it is: the whole image is then IN MEMORY,
    as in CAREamics' in-memory custom stacks.

* ``chunked_loader=g``: ``g(path)`` returns an object with ``shape``, ``dtype`` and
  numpy-style slicing (memory-mapped or chunked formats).  It is called once when opening (for
  shape, dtype and chunks) and then inside each task by a small picklable reader, so the graph
  never holds what ``g`` returns; ``g`` itself must pickle (a module-level function or a
  ``functools.partial`` of one; lambdas need a cloudpickle-based scheduler).

Sources: a file, a folder (every file matching ``extension_filter`` below it, recursively, in
natural order of the relative paths; default ``'*'``), or a list of files/folders (all paths or
all URIs; URIs are passed to the function unchanged).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..axes import axes_check_and_normalize
from ..errors import AxesError, CaredaskError, FormatError, InputError, SourceNotFoundError
from .base import LazyImage, file_identity, read_memmap, reader_to_dask
from .discover import check_not_mixed, is_uri, list_folder, matches, natural_key
from .guarded import GuardedReader
from .registry import register_loader

__all__ = [
    "CUSTOM_OPTIONS",
    "ChunkedLoaderReader",
    "MemmapReader",
    "open_custom",
    "probe_custom",
]

CUSTOM_OPTIONS = frozenset(
    {"read_source_func", "extension_filter", "read_kwargs", "chunked_loader", "chunks"}
)
"""Options :func:`open_custom` accepts."""


# --------------------------------------------------------------------------- readers


@dataclass
class ChunkedLoaderReader:
    """Calls ``loader(path)`` in every ``__getitem__`` and slices what it returns."""

    path: str | Path
    loader: Callable[[Any], Any]
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.loader(self.path)[key], dtype=self.dtype)


@dataclass
class MemmapReader:
    """Maps ``filename`` read-only in every ``__getitem__`` and copies the slice out."""

    filename: str
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    order: str = "C"
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        order = self.order
        return read_memmap(self.filename, self.offset, self.shape, self.dtype, key, order=order)


def _as_memmap_reader(x: Any) -> MemmapReader | None:
    """A reader for a memmap of a whole file region (not a view of one), else ``None``."""
    if not isinstance(x, np.memmap) or not isinstance(x.base, mmap.mmap) or not x.filename:
        return None
    if x.flags.c_contiguous:
        order = "C"
    elif x.flags.f_contiguous:
        order = "F"
    else:
        return None
    return MemmapReader(str(x.filename), int(x.offset), tuple(x.shape), x.dtype, order)


# --------------------------------------------------------------------------- sources


def _pattern(extension_filter: str | None) -> str:
    """``'npy'``/``'.npy'``/``'*.npy'`` -> ``'*.npy'``; ``None`` -> ``'*'``."""
    if not extension_filter:
        return "*"
    if any(c in extension_filter for c in "*?["):
        return extension_filter
    return "*" + (extension_filter if extension_filter.startswith(".") else "." + extension_filter)


def _list_folder(folder: Path, pattern: str) -> list[Path]:
    files = list_folder(folder, lambda p: matches(p.name, pattern), recursive=True)
    if not files:
        raise SourceNotFoundError(
            f"{folder}: no file below this folder matches extension_filter {pattern!r}; check "
            "the folder or pass extension_filter=... (e.g. '*.npy')"
        )
    return sorted(files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def _sources(source: Any, pattern: str) -> list[str | Path]:
    items = list(source) if isinstance(source, list | tuple) else [source]
    check_not_mixed(items)
    out: list[str | Path] = []
    for s in items:
        if not isinstance(s, str | os.PathLike):
            raise InputError(f"{s!r}: a custom-format source must be a path or a URI")
        if is_uri(s):
            out.append(s)
            continue
        p = Path(s).expanduser()
        if p.is_dir():
            out.extend(_list_folder(p, pattern))
        elif p.exists():
            out.append(p)
        else:
            raise SourceNotFoundError(
                f"{s}: no such file or folder; check the path (relative paths are taken from "
                f"{os.getcwd()})"
            )
    return out


def _identity(src: str | Path) -> Any:
    return file_identity(src) if isinstance(src, Path) else src


# --------------------------------------------------------------------------- images


def _check_axes(axes: str | None, shape: tuple[int, ...], where: Any) -> str:
    if axes is None:
        raise AxesError(
            f"{where}: custom formats carry no axes metadata caredask can read; pass axes=..., "
            f"one letter of 'STCZYX' per dimension of the {len(shape)}-D image {shape}"
        )
    try:
        norm = axes_check_and_normalize(axes)
    except AxesError as e:
        raise AxesError(f"{where}: {e}") from None
    if len(norm) != len(shape):
        raise AxesError(
            f"{where}: axes {norm!r} have {len(norm)} letters but the image has shape {shape} "
            f"({len(shape)} dimensions); pass one letter per dimension"
        )
    return norm


def _default_chunks(x: Any, chunks: Any) -> Any:
    if chunks is not None:
        return chunks
    native = getattr(x, "chunks", None)
    if isinstance(native, tuple) and all(isinstance(c, int | np.integer) for c in native):
        return tuple(int(c) for c in native)
    return "auto"


def _wrap_result(x: Any, ident: Any, chunks: Any, where: str) -> da.Array:
    """Lazy dask array of what ``read_source_func`` returned (see the module docstring)."""
    if isinstance(x, da.Array):
        return x if chunks is None else x.rechunk(chunks)
    reader = _as_memmap_reader(x)
    if reader is not None:
        guarded = GuardedReader(reader, where, _FIX_MMAP)
        return reader_to_dask(guarded, _default_chunks(x, chunks), ident, "read-custom-mmap")
    if not all(hasattr(x, a) for a in ("shape", "dtype", "__getitem__")) or isinstance(
        x, np.ndarray
    ):
        x = np.asarray(x)  # in memory
        return reader_to_dask(x, _default_chunks(x, chunks), ident, "read-custom")
    if not hasattr(x, "ndim"):
        x = _WithNdim(x)
    guarded = GuardedReader(x, where, _FIX_FUNC)
    return reader_to_dask(guarded, _default_chunks(x, chunks), ident, "read-custom")


@dataclass
class _WithNdim:
    """Adds ``ndim`` to an array-like that lacks it."""

    inner: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.inner.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.inner.dtype)

    @property
    def ndim(self) -> int:
        return len(self.inner.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.inner[key])


_FIX_FUNC = "the file is damaged, or read_source_func returned an array that cannot be read"
_FIX_MMAP = "the memory-mapped file was truncated or changed after it was opened; open it again"
_FIX_LOADER = "the file is damaged or changed, or chunked_loader cannot read it; check both"


def _call(f: Callable[..., Any], what: str, src: str | Path, *args: Any, **kwargs: Any) -> Any:
    """Call a user's read function; its errors become a FormatError naming the file."""
    try:
        return f(src, *args, **kwargs)
    except CaredaskError:
        raise
    except Exception as e:
        raise FormatError(
            f"{_source_text(src)}: {what} {getattr(f, '__name__', f)!s} failed on this file "
            f"({type(e).__name__}: {e}); check the file (damaged or of another format) and the "
            "function"
        ) from e


def _name(src: str | Path) -> str:
    return src.name if isinstance(src, Path) else str(src).rstrip("/").rsplit("/", 1)[-1]


def _source_text(src: str | Path) -> str:
    return str(src.absolute()) if isinstance(src, Path) else src


def _read_func_image(
    src: str | Path, axes: str | None, func: Callable[..., Any], kwargs: dict[str, Any], chunks: Any
) -> LazyImage:
    result = _call(func, "read_source_func", src, axes, **kwargs)
    shape = tuple(int(n) for n in np.shape(result))
    img_axes = _check_axes(axes, shape, src)
    ident = (_identity(src), tokenize(func), tokenize(kwargs), img_axes)
    data = _wrap_result(result, ident, chunks, _source_text(src))
    return LazyImage(data, img_axes, _name(src), source=_source_text(src))


def _chunked_image(
    src: str | Path, axes: str | None, loader: Callable[[Any], Any], chunks: Any
) -> LazyImage:
    opened = _call(loader, "chunked_loader", src)
    shape, dtype = tuple(int(n) for n in opened.shape), np.dtype(opened.dtype)
    spec = _default_chunks(opened, chunks)
    del opened
    img_axes = _check_axes(axes, shape, src)
    reader = GuardedReader(
        ChunkedLoaderReader(src, loader, shape, dtype), _source_text(src), _FIX_LOADER
    )
    ident = (_identity(src), tokenize(loader))
    data = reader_to_dask(reader, spec, ident, "read-custom-chunked")
    return LazyImage(data, img_axes, _name(src), source=_source_text(src))


# --------------------------------------------------------------------------- loader


def probe_custom(source: Any, options: dict[str, Any]) -> bool:
    """Registry probe: yes whenever ``read_source_func`` or ``chunked_loader`` is given."""
    return options.get("read_source_func") is not None or options.get("chunked_loader") is not None


def open_custom(source: Any, axes: str | None = None, **options: Any) -> list[LazyImage]:
    """Open files of a custom format with a user read function or chunked loader.

    Parameters
    ----------
    source : str, path, or list of them
        A file, a folder (searched recursively with ``extension_filter``), or a list.
    axes : str
        Axes of every image (required: one letter of ``STCZYX`` per dimension).
    **options
        ``read_source_func`` (``f(path, axes, **read_kwargs) -> array``) with optional
        ``read_kwargs`` (dict); or ``chunked_loader`` (``g(path) -> array-like``);
        ``extension_filter`` (glob for folders, e.g. ``'*.npy'``; ``'npy'`` and ``'.npy'``
        work too; default every file); ``chunks`` (dask chunks; default the array's own
        ``chunks`` if it has integer ones, else ``'auto'``).

    Returns
    -------
    list of LazyImage
        One per file, in order (folders: natural order of the relative paths).  Named by
        file name; ``source`` is the absolute path.  Laziness depends on what the read
        function returns (see the module docstring); ``chunked_loader`` images are always
        lazy.

    Raises
    ------
    InputError
        Both or neither of ``read_source_func``/``chunked_loader``, a non-callable one, an
        unknown option, or a list mixing paths and URIs.
    SourceNotFoundError
        A missing file, or a folder with no matching file.
    AxesError
        Axes missing or not one letter per dimension.
    """
    unknown = sorted(set(options) - CUSTOM_OPTIONS)
    if unknown:
        raise InputError(
            f"{source}: unknown option(s) {unknown} for custom formats; use "
            f"{sorted(CUSTOM_OPTIONS)}"
        )
    func, loader = options.get("read_source_func"), options.get("chunked_loader")
    if (func is None) == (loader is None) or not callable(func or loader):
        raise InputError(
            f"{source}: give exactly one callable: read_source_func=f (f(path, axes) -> array) "
            "or chunked_loader=g (g(path) -> array-like)"
        )
    chunks, kwargs = options.get("chunks"), dict(options.get("read_kwargs") or {})
    files = _sources(source, _pattern(options.get("extension_filter")))
    if func is not None:
        return [_read_func_image(f, axes, func, kwargs, chunks) for f in files]
    assert loader is not None
    return [_chunked_image(f, axes, loader, chunks) for f in files]


register_loader("custom", probe_custom, open_custom, first=True)
