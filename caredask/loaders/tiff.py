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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr
from dask.array.core import normalize_chunks

from ..errors import CaredaskError, FormatError, InputError, SourceNotFoundError
from .base import (
    LazyImage,
    balanced_chunks,
    check_unchanged,
    file_identity,
    read_memmap,
    reader_to_dask,
)
from .bioimage import probe_bioio
from .discover import is_uri, is_zarr_path, list_folder, matches
from .registry import register_loader
from .tiff_meta import SeriesInfo, image_axes, inspect_series, tiff_axes

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

    def _read(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        check_unchanged(self.path, self.size, self.mtime_ns)
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


# --------------------------------------------------------------------------- chunks


def _aligned(chunks: tuple[tuple[int, ...], ...], storage: tuple[int, ...]) -> tuple[int, ...]:
    """Round the first chunk of each dimension up to a multiple of the storage unit."""
    return tuple(max(s, c[0] // s * s) for c, s in zip(chunks, storage, strict=True))


def _chunks(info: SeriesInfo, chunks: Any) -> tuple[tuple[int, ...], ...]:
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
    info = inspect_series(path, series, level)
    img_axes = image_axes(path, info, axes, right_align)
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
    if not isinstance(source, str | os.PathLike) or is_uri(source):
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
