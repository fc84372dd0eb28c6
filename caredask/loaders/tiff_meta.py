"""TIFF metadata: one series/level as ``tifffile.imread`` shapes it, checked, and its axes.

:func:`inspect_series` parses a file's metadata only (``tifffile.TiffFile``): shape, dtype,
tifffile axes, whether the series is contiguous and memory-mappable (``dataoffset``), its byte
order and the storage unit (strip/tile/page) of tifffile's zarr view.  Truncated or corrupt
files, which tifffile only logs about, are refused with a :class:`FormatError`.
:func:`tiff_axes` / :func:`image_axes` turn tifffile's axes (or the user's) into caredask's.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from ..axes import axes_check_and_normalize, suggest_axes
from ..errors import AxesError, CaredaskError, FormatError, InputError

__all__ = ["SeriesInfo", "image_axes", "inspect_series", "tiff_axes"]

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


@dataclass(frozen=True)
class SeriesInfo:
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


def _check_complete(s: Any, info: SeriesInfo, path: Path) -> None:
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


def _series_info(path: Path, series: int, level: int) -> SeriesInfo:
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
        info = SeriesInfo(
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


def inspect_series(path: Path, series: int, level: int) -> SeriesInfo:
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


def image_axes(path: Path, info: SeriesInfo, axes: str | None, right_align: bool) -> str:
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
