"""Lazy TIFF loader: one file, or every matching file of a folder, opened without reading pixels.

Opening parses metadata only (``tifffile.TiffFile``).  The dask graph holds small picklable
readers (path, series, level, shape, dtype, identity), never an open handle:

* :class:`TiffMemmapReader` for uncompressed, contiguous series (``series.dataoffset``): each
  read maps the file, copies out the slice and drops the map, so only touched bytes are read
  and memory stays bounded;
* :class:`TiffZarrReader` for everything else (compressed, tiled, stripped, ...): reads go
  through tifffile's zarr store, opened once per process and cached.

Shapes and axes are those of ``tifffile.imread(path)`` (series 0, level 0, singleton
dimensions squeezed), which is what csbdeep reads.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr
from dask.array.core import normalize_chunks

from ..axes import axes_check_and_normalize, suggest_axes
from ..errors import AxesError, CaredaskError, FormatError, InputError, SourceNotFoundError
from .base import (
    LazyImage,
    balanced_chunks,
    check_unchanged,
    file_identity,
    read_memmap,
    reader_to_dask,
)
from .bioimage import probe_bioio
from .discover import is_zarr_path, list_folder, matches
from .registry import register_loader

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_PATTERN",
    "TiffMemmapReader",
    "TiffZarrReader",
    "open_tiff",
    "probe_tiff",
    "tiff_axes",
]

TIFF_SUFFIXES = (".tif", ".tiff")
DEFAULT_PATTERN = "*.tif*"
CHUNK_BYTES = 32 * 2**20
"""Target size of one default dask chunk (a multiple of the storage unit)."""
_OPTIONS = frozenset({"chunks", "pattern", "series", "level", "right_align_axes"})
# tifffile logs (rather than raises) these when a file is truncated or corrupt.
_CORRUPTION_LOGS = (
    "invalid page offset",
    "invalid offset to",
    "corrupted file",
    "corrupted tag list",
    "failed to reshape",
    "incompletely written",
    "circular reference",
)
_TIFF_TO_CAREDASK = {"S": "C", "T": "T", "C": "C", "Z": "Z", "Y": "Y", "X": "X"}


# --------------------------------------------------------------------------- readers


@dataclass
class _TiffReader:
    """Common fields of the picklable readers: file, identity and the array it exposes."""

    path: str
    size: int
    mtime_ns: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.ndim = len(self.shape)

    def _check_unchanged(self) -> None:
        check_unchanged(self.path, self.size, self.mtime_ns)

    def _read(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        self._check_unchanged()
        try:
            return self._read(key)
        except CaredaskError:
            raise
        except Exception as e:
            raise FormatError(
                f"{self.path}: reading pixels {key} failed ({type(e).__name__}: {e}); the file "
                "is damaged or uses an unsupported encoding; re-export it as TIFF"
            ) from e


@dataclass
class TiffMemmapReader(_TiffReader):
    """Reads an uncompressed, contiguous TIFF series by memory-mapping it per read.

    Attributes
    ----------
    offset : int
        Byte offset of the series' first pixel (tifffile ``series.dataoffset``).
    file_dtype : str
        The dtype as stored, with the file's byte order (e.g. ``'>u2'``).
    """

    offset: int = 0
    file_dtype: str = ""

    def _read(self, key: Any) -> np.ndarray:
        file_dtype = np.dtype(self.file_dtype)
        return read_memmap(self.path, self.offset, self.shape, file_dtype, key, dtype=self.dtype)


@dataclass
class TiffZarrReader(_TiffReader):
    """Reads any TIFF series through tifffile's zarr store (cached per process).

    Attributes
    ----------
    series, level : int
        Which series and pyramid level of the file.
    """

    series: int = 0
    level: int = 0

    def _read(self, key: Any) -> np.ndarray:
        arr = _open_zarr(self.path, self.size, self.mtime_ns, self.series, self.level)
        return np.asarray(arr[key], dtype=self.dtype)


@functools.lru_cache(maxsize=16)
def _open_zarr(path: str, size: int, mtime_ns: int, series: int, level: int) -> zarr.Array:
    """tifffile's zarr store of one series/level, opened once per process and file version."""
    store = tifffile.imread(path, aszarr=True, series=series, level=level)
    return zarr.open_array(store, mode="r")


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class _SeriesInfo:
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    axes: str
    dataoffset: int | None
    byteorder: str
    storage_chunks: tuple[int, ...]


@contextmanager
def _tifffile_log() -> Iterator[list[str]]:
    """Collect what tifffile logs in this thread (it logs, not raises, on truncated files)."""
    messages: list[str] = []
    thread = threading.get_ident()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                messages.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _not_readable(path: Path, why: str) -> FormatError:
    return FormatError(
        f"{path}: not a readable TIFF file ({why}); check that the file is complete and is a "
        "TIFF (re-export or copy it again)"
    )


def _select(tf: tifffile.TiffFile, path: Path, series: int, level: int) -> Any:
    if not tf.series:
        raise _not_readable(path, "it contains no image series")
    if not 0 <= series < len(tf.series):
        raise InputError(
            f"{path}: series={series} does not exist; the file has {len(tf.series)} series "
            f"(0..{len(tf.series) - 1})"
        )
    levels = tf.series[series].levels
    if not 0 <= level < len(levels):
        raise InputError(
            f"{path}: level={level} does not exist in series {series}; it has "
            f"{len(levels)} level(s) (0..{len(levels) - 1})"
        )
    return levels[level]


def _check_complete(s: Any, info: _SeriesInfo, path: Path) -> None:
    """Raise if the series' data run past the end of the file (truncated file)."""
    fsize = os.path.getsize(path)
    if info.dataoffset is not None:
        end = info.dataoffset + math.prod(info.shape) * info.dtype.itemsize
        if end > fsize:
            raise _not_readable(path, f"pixel data end at byte {end}, the file has {fsize}")
        return
    last = s.pages[-1] if len(s.pages) else None
    if last is None or not last.dataoffsets:
        return
    end = max(o + n for o, n in zip(last.dataoffsets, last.databytecounts, strict=False))
    last_size = last.parent.filehandle.size
    if end > last_size:
        raise _not_readable(path, f"pixel data end at byte {end}, the file has {last_size}")


def _series_info(path: Path, series: int, level: int) -> _SeriesInfo:
    """Metadata of one series/level, as ``tifffile.imread`` would shape it."""
    with _tifffile_log() as logged, tifffile.TiffFile(path) as tf:
        s = _select(tf, path, series, level)
        contiguous = (
            s.dataoffset is not None
            and getattr(s, "transform", None) is None
            and bool(getattr(s.keyframe, "is_memmappable", False))
        )
        with tf.series[series].aszarr(level=level) as store:
            storage = tuple(zarr.open_array(store, mode="r").chunks)
        info = _SeriesInfo(
            shape=tuple(s.shape),
            dtype=np.dtype(s.dtype),
            axes=str(s.axes),
            dataoffset=int(s.dataoffset) if contiguous else None,
            byteorder=tf.byteorder,
            storage_chunks=storage,
        )
        _check_complete(s, info, path)
    bad = [m for m in logged if any(c in m for c in _CORRUPTION_LOGS)]
    if bad:
        raise _not_readable(path, f"tifffile: {bad[0]}")
    if len(info.storage_chunks) != len(info.shape):
        raise _not_readable(path, f"zarr view {info.storage_chunks} does not fit {info.shape}")
    return info


def _inspect(path: Path, series: int, level: int) -> _SeriesInfo:
    try:
        return _series_info(path, series, level)
    except CaredaskError:
        raise
    except Exception as e:
        raise _not_readable(path, f"{type(e).__name__}: {e}") from e


def tiff_axes(series_axes: str) -> str | None:
    """caredask axes for tifffile series axes, or ``None`` when they are not known.

    ``S, T, C, Z, Y, X`` are kept except tifffile's ``S`` (samples, e.g. RGB) which becomes
    ``C``; any other letter (``Q``/``I`` for unknown or generic frames, ...) or a resulting
    repeated letter gives ``None``.
    """
    mapped = "".join(_TIFF_TO_CAREDASK.get(a, "?") for a in series_axes.upper())
    if "?" in mapped or len(set(mapped)) != len(mapped):
        return None
    return mapped


def _image_axes(path: Path, info: _SeriesInfo, axes: str | None, right_align: bool) -> str:
    if axes is None:
        mapped = tiff_axes(info.axes)
        if mapped is None:
            raise AxesError(
                f"{path}: the file's metadata give no usable axes (tifffile axes "
                f"{info.axes!r} for shape {info.shape}); pass axes=... with one letter of "
                f"'STCZYX' per dimension, e.g. axes={suggest_axes(info.shape)!r}"
            )
        return mapped
    axes = axes_check_and_normalize(axes)
    if right_align and len(axes) > len(info.shape):  # csbdeep: 'CZYX' for a 3D image is 'ZYX'
        axes = axes[len(axes) - len(info.shape) :]
    if len(axes) != len(info.shape):
        raise AxesError(
            f"{path}: axes {axes!r} have {len(axes)} letters but the image (as tifffile.imread "
            f"returns it) has shape {info.shape} ({len(info.shape)} dimensions, tifffile axes "
            f"{info.axes!r}); pass one letter per dimension, e.g. "
            f"axes={suggest_axes(info.shape)!r}"
        )
    return axes


# --------------------------------------------------------------------------- chunks


def _aligned(chunks: tuple[tuple[int, ...], ...], storage: tuple[int, ...]) -> tuple[int, ...]:
    """Round the first chunk of each dimension up to a multiple of the storage unit."""
    return tuple(max(s, c[0] // s * s) for c, s in zip(chunks, storage, strict=True))


def _chunks(info: _SeriesInfo, chunks: Any) -> tuple[tuple[int, ...], ...]:
    """Default: multiples of the storage unit, about :data:`CHUNK_BYTES` each.

    Memory-mappable series can be read in any shape: they get whole rows and balanced blocks
    (:func:`~caredask.loaders.base.balanced_chunks`) instead of thin page slabs.
    """
    if chunks is None and info.dataoffset is not None:
        chunks = balanced_chunks(info.shape, np.dtype(info.dtype).itemsize, CHUNK_BYTES)
    spec = "auto" if chunks is None else chunks
    norm = normalize_chunks(
        spec,
        info.shape,
        limit=CHUNK_BYTES,
        dtype=info.dtype,
        previous_chunks=info.storage_chunks,
    )
    if chunks is None and info.dataoffset is None:
        norm = normalize_chunks(_aligned(norm, info.storage_chunks), info.shape)
    return tuple(tuple(int(c) for c in cs) for cs in norm)


# --------------------------------------------------------------------------- loader


def _open_file(
    path: Path, axes: str | None, chunks: Any, series: int, level: int, right_align: bool = False
) -> LazyImage:
    if not path.is_file():
        raise SourceNotFoundError(
            f"{path}: no such TIFF file; check the path (relative paths are taken from "
            f"{os.getcwd()})"
        )
    ident = file_identity(path)
    info = _inspect(path, series, level)
    img_axes = _image_axes(path, info, axes, right_align)
    apath, size, mtime = ident
    native = info.dtype.newbyteorder("=")
    reader: _TiffReader
    if info.dataoffset is not None:
        file_dtype = native.newbyteorder(">" if info.byteorder == ">" else "<").str
        reader = TiffMemmapReader(
            apath, size, mtime, info.shape, native, offset=info.dataoffset, file_dtype=file_dtype
        )
    else:
        reader = TiffZarrReader(apath, size, mtime, info.shape, native, series=series, level=level)
    data = reader_to_dask(reader, _chunks(info, chunks), (ident, series, level), "read-tiff")
    return LazyImage(data, img_axes, path.name, source=ident[0])


def _list_folder(folder: Path, pattern: str) -> list[Path]:
    """Regular, non-hidden files of ``folder`` matching ``pattern``, in natural order."""
    files = list_folder(folder, lambda p: matches(p.name, pattern))
    if not files:
        raise SourceNotFoundError(
            f"{folder}: no file matches pattern {pattern!r} in this folder; check the folder "
            "or pass pattern=... (e.g. pattern='*.tif')"
        )
    return files


def probe_tiff(source: Any, options: dict[str, Any]) -> bool:
    """Say yes to a path ending in ``.tif``/``.tiff`` (any case) or a folder of TIFFs."""
    if not isinstance(source, str | os.PathLike) or "://" in str(source):
        return False
    p = Path(source).expanduser()
    if p.is_dir():
        if is_zarr_path(p):
            return False
        # A folder is TIFF's when asked with a pattern, or when it holds TIFF files (a folder
        # of other formats, e.g. CZI, goes to the registry's per-file listing).
        # A folder that also holds vendor files (.dv, .nd2, ...) is listed file by file too.
        names = [f.name for f in p.iterdir() if not f.name.startswith(".")]
        return "pattern" in options or (
            any(Path(n).suffix.lower() in TIFF_SUFFIXES for n in names)
            and not any(probe_bioio(p / n, options) for n in names)
        )
    return p.suffix.lower() in TIFF_SUFFIXES


def _int_option(options: dict[str, Any], name: str) -> int:
    value = options.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"TIFF option {name}={value!r} must be an integer index (default 0)")
    return int(value)


def open_tiff(
    source: str | os.PathLike[str], axes: str | None = None, **options: Any
) -> list[LazyImage]:
    """Open a TIFF file, or every matching file of a folder, lazily.

    Parameters
    ----------
    source : str or path
        A ``.tif``/``.tiff`` file or a folder of them.
    axes : str, optional
        Axes of each image, one letter of ``STCZYX`` per dimension of the image as
        ``tifffile.imread`` returns it; taken from ImageJ/OME/tifffile metadata when omitted.
    **options
        ``chunks`` (dask chunks; default multiples of the strips/tiles/pages of about 32 MiB),
        ``pattern`` (folders only, default ``'*.tif*'``, suffix case-insensitive),
        ``series`` and ``level`` (default 0), ``right_align_axes`` (csbdeep's rule: longer
        ``axes`` name the trailing dimensions, ``'CZYX'`` for a 3D image means ``'ZYX'``).

    Returns
    -------
    list of LazyImage
        One per file (folders: natural order of the file names).  Name is the file name,
        source its absolute path.

    Raises
    ------
    SourceNotFoundError
        Missing file, or a folder without matching files.
    FormatError
        A file that is not a readable (complete) TIFF.
    AxesError
        Axes missing from the metadata and not given, or not one letter per dimension.
    InputError
        Unknown option, or a series/level that does not exist.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(
            f"{source}: unknown option(s) {unknown} for TIFF sources; use {sorted(_OPTIONS)}"
        )
    series, level = _int_option(options, "series"), _int_option(options, "level")
    path = Path(source).expanduser()
    if path.is_dir():
        files = _list_folder(path, str(options.get("pattern") or DEFAULT_PATTERN))
    else:
        files = [path]
    right = bool(options.get("right_align_axes", False))
    return [_open_file(f, axes, options.get("chunks"), series, level, right) for f in files]


register_loader("tiff", probe_tiff, open_tiff)
