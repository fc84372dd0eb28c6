"""Lazy Zarr (v2 and v3) and OME-Zarr (NGFF 0.4 and 0.5) loader, local or remote (fsspec).

What a source opens to:

* a path to a store (``x.zarr``, or any directory holding ``zarr.json``/``.zgroup``/
  ``.zarray``), or a ``file://`` URI to a group (``file:///abs/x.zarr/group``, also the
  relative form ``file://x.zarr/group`` that zarr's ``store_path`` prints): the arrays directly
  in that group, in natural order (``'2'`` before ``'10'``), one image each; sub-groups are not
  traversed.  A store or URI whose node is itself an array: that array.
* an OME-Zarr image (a group with NGFF ``multiscales`` metadata, 0.5 under
  ``attributes['ome']``, 0.4 at the top level): ONE image, the pyramid level ``level``
  (default 0, full resolution, ``multiscales[0].datasets[level].path``), with axes from the
  metadata.
* a bioformats2raw layout (``bioformats2raw.layout`` attribute; series listed in the ``OME``
  group's ``series`` attribute, else the groups ``'0'``, ``'1'``, ... up to the first missing):
  one image per series, each as above.
* remote URIs (``https://``, ``s3://``, ``gs://``, ...) follow the same rules through fsspec;
  ``storage_options=`` is passed to the filesystem (e.g. ``{'anon': True}``).  Listing the
  arrays of a plain remote group needs consolidated metadata or a server that lists
  directories; OME images and series never need listing.
* a list of such sources: all paths or all URIs (a mixed list raises :class:`InputError`);
  the images of each element, in list order.

Dask chunks are the store's read unit: the shard when the array is sharded, else the chunk
(``chunks=`` overrides with any dask chunk spec; multiples of the read unit, e.g.
``chunks='auto'``, avoid decoding one stored chunk in several tasks).  Dask fuses a slice of
the image into the read of each block, so computing a patch decodes only the stored chunks
(for shards: the inner chunks) it overlaps.  The graph holds the ``zarr.Array`` itself (it
pickles as its store location and metadata, never as data or an open handle); task names are
tokenised from the location, the array metadata and, for local stores, the modification time
of the array's metadata file.  Opening reads metadata only.  Local arrays are opened with
the ``zarrs`` codec pipeline when it is installed and not turned off (see
:mod:`caredask.loaders.codecs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import zarr

from ..errors import FormatError, InputError, SourceNotFoundError
from .base import LazyImage
from .codecs import zarr_config
from .discover import check_not_mixed, file_uri_to_path, is_uri, is_zarr_path, natural_key
from .ome_zarr import ome_metadata, open_ome_image, open_series, parent_ome_axes
from .registry import register_loader
from .zarr_base import array_dim_names, check_agree, node_axes, zarr_image
from .zarr_stores import Location, all_local, locate, open_node

__all__ = [
    "ZARR_OPTIONS",
    "is_zarr_source",
    "node_axes",
    "ome_metadata",
    "open_zarr",
    "probe_zarr",
]


ZARR_OPTIONS = frozenset({"chunks", "level", "storage_options"})
"""Options :func:`open_zarr` accepts."""
_NOT_ZARR_SUFFIXES = (".tif", ".tiff", ".czi", ".npy", ".npz", ".png", ".jpg", ".jpeg", ".h5")


# --------------------------------------------------------------------------- probing


def is_zarr_source(source: Any) -> bool:
    """Whether one path or URI is for this loader.

    Yes for a path with a ``*.zarr`` component or a directory holding zarr metadata, a
    ``file://`` URI to such a path, and any other URI (``https://``, ``s3://``, ...) that does
    not end in a known non-zarr file suffix (``.tif``, ``.czi``, ...).
    """
    if not isinstance(source, str | os.PathLike) or isinstance(source, bytes):
        return False
    text = os.fspath(source)
    if is_uri(text):
        if text.lower().startswith("file://"):
            return is_zarr_path(Path(file_uri_to_path(text)))
        return not text.rstrip("/").lower().endswith(_NOT_ZARR_SUFFIXES)
    return is_zarr_path(Path(text).expanduser())


def probe_zarr(source: Any, options: dict[str, Any]) -> bool:
    """Registry probe: a zarr path/URI, or a list of paths/URIs of which one is zarr."""
    if isinstance(source, list | tuple):
        return (
            len(source) > 0
            and all(isinstance(s, str | os.PathLike) for s in source)
            and any(is_zarr_source(s) for s in source)
        )
    return is_zarr_source(source)


def _open_array(
    arr: zarr.Array,
    loc: Location,
    name: str,
    axes: str | None,
    options: dict[str, Any],
    ome: str | None = None,
) -> LazyImage:
    """One image; ``ome``: the axes an enclosing OME multiscales gives the array, if any."""
    meta, what = array_dim_names(arr), "dimension_names"
    if meta is None:
        meta, what = ome, "OME multiscales axes"
    else:
        check_agree(ome, meta, loc.where)
    img_axes = node_axes(axes, meta, arr.ndim, loc.where, what)
    return zarr_image(arr, loc, name, img_axes, options.get("chunks"))


def _open_plain_group(
    group: zarr.Group, loc: Location, axes: str | None, options: dict[str, Any]
) -> list[LazyImage]:
    if options.get("level", 0) not in (0, None):
        raise InputError(
            f"{loc.where}: level= applies to OME-Zarr images only, and this group has no "
            "OME multiscales metadata; drop level="
        )
    try:
        keys = sorted(group.array_keys(), key=natural_key)
    except Exception as e:
        raise SourceNotFoundError(
            f"{loc.where}: cannot list the arrays of this group ({type(e).__name__}: {e}); "
            "consolidate its metadata (zarr.consolidate_metadata) or pass the URI of each array"
        ) from e
    if not keys:
        subgroups = sorted(group.group_keys(), key=natural_key)
        fix = (
            f"it holds the groups {subgroups}: pass the path or URI of one of them"
            if subgroups
            else "pass a group or array that holds image data"
        )
        raise FormatError(
            f"{loc.where}: this zarr group contains no arrays (sub-groups are not searched); " + fix
        )
    arrays = [cast(zarr.Array, group[k]) for k in keys]
    return [
        _open_array(a, loc.child(k), f"{loc.display}/{k}", axes, options)
        for k, a in zip(keys, arrays, strict=True)
    ]


def _open_one(
    source: str | os.PathLike[str], axes: str | None, options: dict[str, Any]
) -> list[LazyImage]:
    loc = locate(source)
    node = open_node(loc, options.get("storage_options"))
    if isinstance(node, zarr.Array):
        if options.get("level", 0) not in (0, None):
            raise InputError(f"{loc.where}: level= applies to OME-Zarr images, not an array")
        parent = parent_ome_axes(loc, node, options)  # a level of an OME image, opened alone
        return [_open_array(node, loc, loc.display, axes, options, parent)]
    ome = ome_metadata(node)
    if ome.get("multiscales"):
        return [open_ome_image(node, loc, loc.display, axes, options)]
    if "bioformats2raw.layout" in ome:
        return open_series(node, loc, axes, options)
    return _open_plain_group(node, loc, axes, options)


def open_zarr(source: Any, axes: str | None = None, **options: Any) -> list[LazyImage]:
    """Open the images of a zarr / OME-Zarr source lazily (see the module docstring).

    Parameters
    ----------
    source : str, path, or list of them
        A store path, a ``file://`` URI, a remote URI, or a list of either (not mixed).
    axes : str, optional
        Axes of every image; taken from ``dimension_names`` (zarr v3), ``_ARRAY_DIMENSIONS``
        (xarray, v2) or OME ``multiscales`` axes (``t, c, z, y, x`` -> ``TCZYX``) when omitted.
    **options
        ``chunks`` (dask chunks, default the shard or chunk shape), ``level`` (OME pyramid
        level: index into ``datasets`` or a dataset path; default 0), ``storage_options``
        (fsspec options for remote URIs).

    Returns
    -------
    list of LazyImage
        Names are the path from the store on (``x.zarr/raw``); ``source`` is the array's
        absolute path or URI.  No pixel is read.

    Raises
    ------
    SourceNotFoundError
        Missing store, a URI to nothing, or an unreadable remote store.
    FormatError
        A group without arrays, or broken OME metadata.
    AxesError
        Axes missing, of the wrong length, or contradicting the metadata.
    InputError
        Unknown option, a level that does not exist, or a list mixing paths and URIs.
    """
    unknown = sorted(set(options) - ZARR_OPTIONS)
    if unknown:
        raise InputError(
            f"{source}: unknown option(s) {unknown} for zarr sources; use {sorted(ZARR_OPTIONS)}"
        )
    # Arrays opened here carry caredask's codec pipeline into the graph (see .codecs).
    with zarr_config(local=all_local(source)):
        if not isinstance(source, list | tuple):
            return _open_one(source, axes, options)
        check_not_mixed(source)
        images: list[LazyImage] = []
        for s in source:
            if is_zarr_source(s):
                images.extend(_open_one(s, axes, options))
            else:  # e.g. a TIFF in the same list: whichever loader reads it
                from .registry import open_images

                rest = {k: v for k, v in options.items() if k != "storage_options"}
                images.extend(open_images(s, axes, **rest))
        return images


register_loader("zarr", probe_zarr, open_zarr)
