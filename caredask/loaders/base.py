"""What every loader returns (:class:`LazyImage`) and how a picklable reader becomes dask.

A loader never holds an open file handle in the graph: it builds a small picklable *reader*
(an object with ``shape``, ``dtype``, ``ndim`` and numpy-style ``__getitem__`` that opens the
file itself) and wraps it with :func:`reader_to_dask`, whose task names are deterministic
(tokenised from the source identity: path, size, mtime and read parameters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import dask.array as da
import numpy as np
from dask.base import tokenize

__all__ = [
    "ArrayReader",
    "LazyImage",
    "RegionSource",
    "balanced_chunks",
    "check_unchanged",
    "coarsen",
    "file_identity",
    "grown_block",
    "read_memmap",
    "reader_to_dask",
    "region_source",
]


class ArrayReader(Protocol):
    """A picklable, lazily opening array-like: what :func:`reader_to_dask` wraps."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    ndim: int

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray: ...


@dataclass(frozen=True)
class LazyImage:
    """One image as caredask sees it.

    Attributes
    ----------
    data : dask.array.Array
        The pixels, lazily; computing it reads only the chunks asked for.
    axes : str
        One letter of ``STCZYX`` per dimension of ``data``.
    name : str
        A readable identifier (file name, ``file.czi@scene``, array path).
    source : str
        Where the pixels come from (path or URI), for messages and provenance.
    metadata : dict
        What the format says about the image beyond pixels, JSON-serialisable (e.g. the
        bioio loader's ``physical_pixel_sizes`` and ``channel_names``); empty if nothing.
    """

    data: da.Array
    axes: str
    name: str
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.axes) != self.data.ndim:
            from ..errors import AxesError

            raise AxesError(
                f"{self.source or self.name}: axes {self.axes!r} have {len(self.axes)} letters "
                f"but the image has {self.data.ndim} dimensions {self.data.shape}; "
                "pass axes with one letter per dimension"
            )


def file_identity(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)``: what a task name depends on for a file."""
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def reader_to_dask(
    reader: ArrayReader,
    chunks: Any,
    identity: Any,
    prefix: str = "caredask-read",
    grid: tuple[int, ...] | None = None,
) -> da.Array:
    """Wrap a picklable reader as a dask array with a deterministic name.

    Parameters
    ----------
    reader : ArrayReader
        Opens its source inside ``__getitem__``; must pickle without open handles.
    chunks : chunks specification
        Dask chunks (e.g. the store's own chunks or multiples of them).
    identity : object
        Everything that determines the pixels (path, size, mtime, series, level, ...).
    prefix : str
        Readable start of the task name.
    grid : tuple of int, optional
        The source's decode grid (default: the reader's ``read_chunks`` or ``chunks``, else
        the dask chunk).
    """
    name = f"{prefix}-{tokenize(identity, chunks)}"
    meta = np.empty((0,) * reader.ndim, dtype=reader.dtype)
    arr = da.from_array(
        reader, chunks=chunks, name=name, lock=False, asarray=False, meta=meta, inline_array=False
    )
    _REGIONS[name] = RegionSource(reader, grid or _read_grid(reader, arr.chunksize))
    return arr


def coarsen(a: da.Array, target_bytes: int, scale: tuple[int, ...] | None = None) -> da.Array:
    """The same pixels in blocks of up to ``target_bytes``, each block one call of the reader.

    Blocks are multiples of ``a``'s chunks (no stored chunk is decoded by two tasks), grown
    by doubling, always along the axis that is shortest relative to ``scale`` (e.g. the
    patch size, so stencil halos stay small next to the blocks).  The region source (reader
    and decode grid) carries over.  Arrays not made by :func:`reader_to_dask`, or whose
    chunks cannot grow within ``target_bytes``, come back unchanged.
    """
    src = region_source(a)
    if src is None or a.size == 0:
        return a
    block = grown_block(
        tuple(int(c) for c in a.chunksize), a.shape, a.dtype.itemsize, target_bytes, scale
    )
    if block == a.chunksize:
        return a
    prefix = a.name.rsplit("-", 1)[0]
    return reader_to_dask(src.reader, block, a.name, prefix=prefix, grid=src.grid)


def grown_block(
    chunk: tuple[int, ...],
    shape: tuple[int, ...],
    itemsize: int,
    target_bytes: int,
    scale: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """``chunk`` doubled axis by axis (shortest relative to ``scale`` first) within a size."""
    block = list(chunk)
    weight = scale or (1,) * len(chunk)
    while True:
        open_axes = [i for i in range(len(block)) if block[i] < shape[i]]
        if not open_axes:
            break
        i = min(open_axes, key=lambda j: block[j] / max(weight[j], 1))
        grown = block.copy()
        grown[i] = min(2 * block[i], -(-shape[i] // chunk[i]) * chunk[i])
        if int(np.prod(grown)) * itemsize > target_bytes:
            break
        block = grown
    return tuple(min(b, s) for b, s in zip(block, shape, strict=True))


@dataclass(frozen=True)
class RegionSource:
    """The reader behind a loader's dask array, and the grid its source decodes in.

    ``grid`` is the store's smallest independently decoded unit: the inner chunk of a sharded
    Zarr array, the chunk of a plain one, or the dask chunk for readers that say nothing.
    Reading a region costs the grid cells it touches.
    """

    reader: ArrayReader
    grid: tuple[int, ...]


_REGIONS: dict[str, RegionSource] = {}


def _read_grid(reader: Any, fallback: tuple[int, ...]) -> tuple[int, ...]:
    grid = getattr(reader, "read_chunks", None) or getattr(reader, "chunks", None)
    ok = (
        isinstance(grid, tuple)
        and len(grid) == len(fallback)
        and all(isinstance(g, int) and g > 0 for g in grid)
    )
    return tuple(grid) if ok else tuple(fallback)  # type: ignore[arg-type]


def region_source(a: da.Array) -> RegionSource | None:
    """The reader of a dask array made by :func:`reader_to_dask` (not transformed since)."""
    return _REGIONS.get(a.name)


def balanced_chunks(
    shape: tuple[int, ...], itemsize: int, target_bytes: int = 32 * 2**20
) -> tuple[int, ...]:
    """Chunks for freely addressable data (memory maps): whole lines, balanced elsewhere.

    The last axis stays whole (contiguous reads of whole rows); the largest other axis is
    halved until a chunk holds at most ``target_bytes``.  Blocks come out wide along every axis,
    which keeps stencil halos (the background filter) and patch reads cheap.
    """
    chunk = list(shape)
    while int(np.prod(chunk)) * itemsize > target_bytes:
        lead = chunk[:-1]
        if lead and max(lead) > 1:
            j = int(np.argmax(lead))
        else:
            j = len(chunk) - 1
        if chunk[j] <= 1:
            break
        chunk[j] = -(-chunk[j] // 2)
    return tuple(chunk)


def read_memmap(
    path: str,
    offset: int,
    shape: tuple[int, ...],
    file_dtype: np.dtype[Any],
    key: Any,
    *,
    order: str = "C",
    dtype: np.dtype[Any] | None = None,
) -> np.ndarray:
    """Copy ``key`` out of a fresh read-only memory map of a file region, then drop the map.

    Only the touched bytes are read and no map outlives the call.  ``dtype`` converts the copy
    (e.g. to native byte order); by default it keeps ``file_dtype``.
    """
    layout: Any = order
    mm = np.memmap(path, dtype=file_dtype, mode="r", offset=offset, shape=shape, order=layout)
    try:
        return np.array(mm[key], dtype=dtype)
    finally:
        del mm


def check_unchanged(path: str | os.PathLike[str], size: int, mtime_ns: int) -> None:
    """Refuse to read a file that was removed or changed since it was opened (by identity)."""
    from ..errors import FormatError, SourceNotFoundError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceNotFoundError(
            f"{path}: the file was removed after it was opened; restore it or open the source again"
        ) from None
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
        raise FormatError(
            f"{path}: the file changed after it was opened (size or modification time "
            "differ); open the source again"
        )
