"""NGFF label images (``<image>.zarr/labels/<name>``) of an opened OME-Zarr image.

A label image is itself a multiscale pyramid.  :func:`open_label` picks the level whose array
has the image's shape (the level of the same resolution; a size-1 channel axis where the image
has channels also matches), so ``level=`` on the image needs no counterpart for its labels.
"""

from __future__ import annotations

import os
from typing import Any

import zarr

from ..errors import CaredaskError, FormatError, InputError
from .base import LazyImage
from .ome_zarr import multiscale_axes, ome_metadata
from .zarr_base import node_axes, zarr_image
from .zarr_stores import Location, open_node

__all__ = ["label_names", "open_label"]


def _image_group(image: LazyImage, storage_options: Any) -> tuple[zarr.Group, Location] | None:
    """The OME-Zarr group an image was opened from (``None`` if it is not an OME level)."""
    src = image.source
    local = "://" not in src
    parent, _, key = src.rpartition(os.sep if local else "/")
    if not parent or not key:
        return None
    loc = Location(parent, local)
    try:
        group = open_node(loc, storage_options)
    except CaredaskError:
        return None
    if not isinstance(group, zarr.Group):
        return None
    for ms in ome_metadata(group).get("multiscales") or []:
        if any(str(d.get("path")) == key for d in ms.get("datasets", [])):
            return group, loc
    return None


def label_names(group: zarr.Group) -> list[str]:
    """Names of the label images of an OME-Zarr image group (``[]`` if it has none)."""
    try:
        labels = group["labels"]
    except KeyError:
        return []
    if not isinstance(labels, zarr.Group):
        return []
    listed = ome_metadata(labels).get("labels")
    if listed:
        return [str(n) for n in listed]
    return sorted(k for k, v in labels.groups())


def _fits(shape: tuple[int, ...], axes: str, image: LazyImage) -> bool:
    if axes == image.axes:
        return all(
            a == b or (ax == "C" and a == 1)
            for a, b, ax in zip(shape, image.data.shape, axes, strict=True)
        )
    return (
        "C" in image.axes
        and axes == image.axes.replace("C", "")
        and shape == tuple(n for n, a in zip(image.data.shape, image.axes, strict=True) if a != "C")
    )


def open_label(
    image: LazyImage, name: str, storage_options: dict[str, Any] | None = None
) -> LazyImage | None:
    """The label image ``name`` of an OME-Zarr ``image``, at the image's resolution.

    Returns
    -------
    LazyImage or None
        ``None`` when ``image`` is not an OME-Zarr image or has no label image ``name``.

    Raises
    ------
    InputError
        The label image exists but none of its levels has the image's shape.
    FormatError
        The label image has no multiscales metadata.
    """
    found = _image_group(image, storage_options)
    if found is None:
        return None
    group, loc = found
    if name not in label_names(group):
        return None
    lab_loc = loc.child("labels").child(name)
    lab = group.get(f"labels/{name}")
    ms_list = ome_metadata(lab).get("multiscales") if isinstance(lab, zarr.Group) else None
    if not isinstance(lab, zarr.Group) or not ms_list:
        raise FormatError(f"{lab_loc.where}: label image without multiscales metadata")
    ms = ms_list[0]
    shapes = {}
    for d in ms.get("datasets", []):
        arr = lab.get(str(d["path"]))
        if not isinstance(arr, zarr.Array):
            continue
        meta = multiscale_axes(ms, arr.ndim)
        axes = node_axes(None, meta, arr.ndim, lab_loc.where, "OME multiscales axes")
        shapes[str(d["path"])] = tuple(arr.shape)
        if _fits(tuple(arr.shape), axes, image):
            key = str(d["path"])
            return zarr_image(
                arr, lab_loc.child(key), f"{image.name}#labels/{name}", axes, None, key
            )
    raise InputError(
        f"{lab_loc.where}: no level of label image {name!r} has the shape of its image "
        f"{image.source} {tuple(image.data.shape)} (levels: {shapes}); write labels at the "
        "image's resolution or open the image at a level the labels have (level=)"
    )
