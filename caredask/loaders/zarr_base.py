"""What every Zarr image shares, plain or OME: axes from metadata and the lazy image itself.

* axes: :func:`axis_letters` maps dimension names (and NGFF axis types) to caredask letters,
  :func:`array_dim_names` reads an array's ``dimension_names`` (v3) or ``_ARRAY_DIMENSIONS``
  (xarray's v2 convention), :func:`node_axes` reconciles them with the user's ``axes=``;
* :func:`zarr_image`: a :class:`LazyImage` of one array, chunked by the store's read unit
  (the shard when sharded, else the chunk), with a task name tokenised from the location, the
  array metadata and, for local stores, the modification time of its metadata file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
import zarr.storage

from ..axes import axes_check_and_normalize
from ..errors import AxesError, FormatError
from .base import ArrayReader, LazyImage, reader_to_dask
from .guarded import ZarrChunkReader
from .zarr_stores import Location

__all__ = ["array_dim_names", "axis_letters", "check_agree", "node_axes", "zarr_image"]

_NAME_TO_AXIS = {"t": "T", "time": "T", "c": "C", "channel": "C", "s": "S", "sample": "S"}
_NAME_TO_AXIS.update({a: a.upper() for a in "zyx"})
_TYPE_TO_AXIS = {"time": "T", "channel": "C"}
_EXAMPLE_AXES = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}


def axis_letters(names: Sequence[Any], types: Sequence[Any] | None = None) -> str | None:
    """caredask axes for dimension names (and NGFF axis types), or ``None`` if unknown."""
    types = types if types is not None else [None] * len(names)
    out = []
    for name, typ in zip(names, types, strict=True):
        letter = _TYPE_TO_AXIS.get(str(typ).lower()) or _NAME_TO_AXIS.get(str(name).lower())
        if letter is None:
            return None
        out.append(letter)
    return "".join(out) if len(set(out)) == len(out) else None


def array_dim_names(arr: zarr.Array) -> str | None:
    names: Any = getattr(arr.metadata, "dimension_names", None)
    if names is None:
        names = arr.attrs.get("_ARRAY_DIMENSIONS")  # xarray's convention for zarr v2
    if not names or len(names) != arr.ndim or any(n is None for n in names):
        return None
    return axis_letters(list(names))


def node_axes(given: str | None, meta: str | None, ndim: int, where: str, what: str) -> str:
    """Decide an image's axes from the user's ``given`` and the metadata's ``meta``.

    Raises
    ------
    AxesError
        ``given`` does not have ``ndim`` letters, contradicts ``meta``, or neither is known.
    """
    if given is None:
        if meta is None:
            raise AxesError(
                f"{where}: the array has {ndim} dimensions but no axes metadata (no "
                "dimension_names or OME multiscales axes); pass axes=..., one letter of "
                f"'STCZYX' per dimension, e.g. axes={_EXAMPLE_AXES.get(ndim, 'ZYX')!r}"
            )
        return meta
    try:
        axes = axes_check_and_normalize(given)
    except AxesError as e:
        raise AxesError(f"{where}: {e}") from None
    if len(axes) != ndim:
        raise AxesError(
            f"{where}: axes {axes!r} have {len(axes)} letters but the array has {ndim} "
            "dimensions; pass one letter per dimension"
            + (f", e.g. axes={meta!r} as the {what} say" if meta else "")
        )
    if meta is not None and meta != axes:
        raise AxesError(
            f"{where}: axes {axes!r} were given but the {what} say {meta!r}; omit axes= to use "
            f"the metadata's, or pass axes={meta!r}"
        )
    return axes


def _mtime_ns(arr: zarr.Array) -> int | None:
    store = arr.store
    if not isinstance(store, zarr.storage.LocalStore):
        return None
    meta = "zarr.json" if arr.metadata.zarr_format == 3 else ".zarray"
    try:
        return os.stat(Path(store.root) / arr.path / meta).st_mtime_ns
    except OSError:
        return None


def _read_unit(arr: zarr.Array) -> tuple[int, ...]:
    """The store's read unit: the shard when sharded, else the chunk."""
    shards = getattr(arr, "shards", None)
    return tuple(shards if shards is not None else arr.chunks)


def zarr_image(
    arr: zarr.Array, loc: Location, name: str, axes: str, chunks: Any, extra: Any = ()
) -> LazyImage:
    if np.dtype(arr.dtype).kind not in "biuf":
        raise FormatError(
            f"{loc.where}: zarr array of dtype {arr.dtype} is not an image; store pixels as "
            "integers, floats or booleans"
        )
    spec = _read_unit(arr) if chunks is None else chunks
    identity = (loc.where, arr.metadata.to_dict(), _mtime_ns(arr), extra)
    reader = ZarrChunkReader(arr, loc.where)
    data = reader_to_dask(cast(ArrayReader, reader), spec, identity, prefix="read-zarr")
    return LazyImage(data, axes, name, source=loc.where)


def check_agree(ome: str | None, dims: str | None, where: str) -> None:
    """Refuse an array whose ``dimension_names`` contradict its OME ``multiscales`` axes."""
    if ome is not None and dims is not None and ome != dims:
        raise FormatError(
            f"{where}: the OME multiscales axes say {ome!r} but the array's dimension_names "
            f"say {dims!r}; the metadata contradict each other, so caredask will not guess: "
            "correct one of them in the store"
        )
