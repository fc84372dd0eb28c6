"""OME-Zarr (NGFF 0.4 and 0.5) metadata: multiscale images, their levels and bioformats2raw series.

An OME-Zarr image is a group with ``multiscales`` metadata (0.5 under ``attributes['ome']``,
0.4 at the top level) and opens to ONE image, the pyramid level ``level`` (default 0), with axes
from the metadata; a bioformats2raw layout opens to one image per series.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import zarr

from ..errors import CaredaskError, FormatError, InputError
from .base import LazyImage
from .zarr_base import array_dim_names, axis_letters, check_agree, node_axes, zarr_image
from .zarr_stores import Location, child_node, open_node

__all__ = ["multiscale_axes", "ome_metadata", "open_ome_image", "open_series", "parent_ome_axes"]


def ome_metadata(group: zarr.Group) -> dict[str, Any]:
    """The NGFF attributes of a group: ``attributes['ome']`` (0.5) or the attributes (0.4)."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, dict) else attrs


def multiscale_axes(ms: dict[str, Any], ndim: int) -> str | None:
    axes = ms.get("axes")
    if axes is None:  # NGFF 0.1/0.2: always 5-D tczyx
        return "TCZYX" if ndim == 5 else None
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    types = [a.get("type") if isinstance(a, dict) else None for a in axes]
    return axis_letters(names, types)


def parent_ome_axes(loc: Location, arr: zarr.Array, options: dict[str, Any]) -> str | None:
    """Axes of an array that is a level of an OME image, from the parent group's metadata."""
    parent, _, key = loc.where.rpartition(os.sep if loc.local else "/")
    if not parent or not key:
        return None
    try:
        group = open_node(Location(parent, loc.local), options.get("storage_options"))
    except CaredaskError:
        return None
    if not isinstance(group, zarr.Group):
        return None
    for ms in ome_metadata(group).get("multiscales") or []:
        if any(d.get("path") == key for d in ms.get("datasets", [])):
            return multiscale_axes(ms, arr.ndim)
    return None


def _level_path(ms: dict[str, Any], level: Any, where: str) -> str:
    paths = [str(d["path"]) for d in ms.get("datasets", [])]
    if not paths:
        raise FormatError(f"{where}: OME multiscales metadata list no datasets; fix the store")
    if isinstance(level, str) and level in paths:
        return level
    if isinstance(level, int | np.integer) and not isinstance(level, bool):
        if 0 <= int(level) < len(paths):
            return paths[int(level)]
    raise InputError(
        f"{where}: level={level!r} does not exist; this OME-Zarr image has {len(paths)} "
        f"level(s): indices 0..{len(paths) - 1} or paths {paths}"
    )


def open_ome_image(
    group: zarr.Group, loc: Location, name: str, axes: str | None, options: dict[str, Any]
) -> LazyImage:
    ms = ome_metadata(group)["multiscales"][0]
    level = options.get("level")
    key = _level_path(ms, 0 if level is None else level, loc.where)
    arr = child_node(group, key, loc)
    if not isinstance(arr, zarr.Array):
        raise FormatError(f"{loc.child(key).where}: OME level {key!r} is not an array")
    meta = multiscale_axes(ms, arr.ndim)
    if meta is not None and len(meta) != arr.ndim:
        meta = None
    check_agree(meta, array_dim_names(arr), loc.child(key).where)
    img_axes = node_axes(axes, meta, arr.ndim, loc.where, "OME multiscales axes")
    return zarr_image(arr, loc.child(key), name, img_axes, options.get("chunks"), key)


def _series_paths(group: zarr.Group) -> list[str]:
    """Series of a bioformats2raw layout: the OME group's ``series``, else 0, 1, ..."""
    try:
        ome = group["OME"]
    except KeyError:
        ome = None
    if isinstance(ome, zarr.Group) and ome_metadata(ome).get("series"):
        return [str(s) for s in ome_metadata(ome)["series"]]
    keys: list[str] = []
    while True:
        try:
            node = group[str(len(keys))]
        except KeyError:
            return keys
        if not isinstance(node, zarr.Group):
            return keys
        keys.append(str(len(keys)))


def open_series(
    group: zarr.Group, loc: Location, axes: str | None, options: dict[str, Any]
) -> list[LazyImage]:
    keys = _series_paths(group)
    if not keys:
        raise FormatError(
            f"{loc.where}: a bioformats2raw layout without series (no OME/series list and no "
            "group '0'); convert the data again with bioformats2raw"
        )
    images = []
    for key in keys:
        node = child_node(group, key, loc)
        if not isinstance(node, zarr.Group) or "multiscales" not in ome_metadata(node):
            raise FormatError(f"{loc.child(key).where}: series {key!r} is not an OME-Zarr image")
        images.append(open_ome_image(node, loc.child(key), f"{loc.display}/{key}", axes, options))
    return images
