"""bioio dimensions -> caredask axes, default blocks and metadata (see :mod:`.bioimage`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from dask.array.core import normalize_chunks

from ..axes import axes_check_and_normalize
from ..errors import AxesError, FormatError

__all__ = ["CHUNK_BYTES", "bioio_chunks", "bioio_metadata", "plan_axes"]

CHUNK_BYTES = 32 * 2**20
"""Target size of one default dask block (whole multiples of the plugin's own chunks)."""


# --------------------------------------------------------------------------- axes


def plan_axes(
    where: str, dims: str, shape: tuple[int, ...], axes: str | None, right_align: bool = False
) -> tuple[str, tuple[int, ...]]:
    """Image axes and, per image axis, the bioio dimension it is.

    Parameters
    ----------
    where : str
        The file (for messages).
    dims, shape
        bioio's dimension order (e.g. ``'TCZYX'``) and sizes.
    axes : str, optional
        Requested axes.  ``None``: every dimension with more than one element (and Y, X),
        in bioio's order.  Otherwise the letters name the dimensions to keep, in the order
        wanted; every non-singleton dimension must be named.
    right_align : bool
        csbdeep's rule for folders: the trailing letters of ``axes`` label the non-singleton
        dimensions (``'CZYX'`` for a Z stack means ``'ZYX'``), as for the same data as TIFF.
    """
    names = list(dims.upper())
    if "S" in names:  # RGB samples
        s = names.index("S")
        if shape[s] > 1 and "C" in names and shape[names.index("C")] > 1:
            raise FormatError(
                f"{where}: RGB samples ({shape[s]}) and several channels "
                f"({shape[names.index('C')]}) in one image; export the channels as grey levels"
            )
        if shape[s] > 1 and "C" in names:
            names[names.index("C")] = "c"
        names[s] = "C" if shape[s] > 1 else "s"
    big = tuple(i for i, n in enumerate(names) if shape[i] > 1 or n in "YX")
    odd = [f"{names[i]}={shape[i]}" for i in big if names[i] not in "TCZYX"]
    if odd:
        raise AxesError(
            f"{where}: bioio dimension(s) {', '.join(odd)} (dims {dims!r}) have no caredask "
            "axis; export the file with T, C, Z, Y, X dimensions only"
        )
    natural = "".join(names[i] for i in big)
    if axes is None:
        return natural, big
    axes = axes_check_and_normalize(axes)
    if right_align:
        if len(axes) < len(big):
            raise AxesError(
                f"{where}: axes {axes!r} name {len(axes)} dimensions but the image has "
                f"{len(big)} ({natural}, shape {tuple(shape[i] for i in big)})"
            )
        return axes[len(axes) - len(big) :], big
    unknown = [a for a in axes if a not in names]
    missing = [n for n in natural if n not in axes]
    if unknown or missing:
        raise AxesError(
            f"{where}: axes {axes!r} do not fit the file's dimensions {dims} "
            f"{tuple(shape)}: "
            + (f"no dimension {''.join(unknown)}; " if unknown else "")
            + (f"{''.join(missing)} has several elements and must be named; " if missing else "")
            + f"use e.g. axes={natural!r}"
        )
    return axes, tuple(names.index(a) for a in axes)


# --------------------------------------------------------------------------- metadata


def bioio_metadata(bio: Any, plugin: str, scene: str) -> dict[str, Any]:
    """JSON-serialisable pixel sizes (micrometres), channel names and dimensions."""

    def num(v: Any) -> float | None:
        return None if v is None else float(f"{float(v):.7g}")  # files store float32

    meta: dict[str, Any] = {"reader": plugin, "scene": str(scene), "dims": bio.dims.order}
    try:
        pps = bio.physical_pixel_sizes
        meta["physical_pixel_sizes"] = {"Z": num(pps.Z), "Y": num(pps.Y), "X": num(pps.X)}
    except Exception:  # metadata the plugin cannot parse is left out, pixels still read
        meta["physical_pixel_sizes"] = None
    try:
        names = bio.channel_names
        meta["channel_names"] = None if names is None else [str(c) for c in names]
    except Exception:
        meta["channel_names"] = None
    return meta


def bioio_chunks(
    shape: tuple[int, ...], dtype: np.dtype[Any], native: tuple[int, ...], chunks: Any
) -> tuple[tuple[int, ...], ...]:
    """Default: whole multiples of the plugin's chunks, about :data:`CHUNK_BYTES` each."""
    if chunks is not None:
        return tuple(normalize_chunks(chunks, shape, dtype=dtype))
    native = tuple(max(1, n) for n in native)
    auto = normalize_chunks("auto", shape, limit=CHUNK_BYTES, dtype=dtype, previous_chunks=native)
    aligned = tuple(max(n, c[0] // n * n) for c, n in zip(auto, native, strict=True))
    return tuple(normalize_chunks(aligned, shape))
