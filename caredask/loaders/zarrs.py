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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
import zarr.storage
from zarr.abc.store import Store

from ..axes import axes_check_and_normalize
from ..errors import AxesError, CaredaskError, FormatError, InputError, SourceNotFoundError
from .base import ArrayReader, LazyImage, reader_to_dask
from .codecs import zarr_config
from .guarded import ZarrChunkReader
from .registry import file_uri_to_path, natural_key, register_loader

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
_MARKERS = ("zarr.json", ".zgroup", ".zarray")
_NOT_ZARR_SUFFIXES = (".tif", ".tiff", ".czi", ".npy", ".npz", ".png", ".jpg", ".jpeg", ".h5")
_NAME_TO_AXIS = {"t": "T", "time": "T", "c": "C", "channel": "C", "s": "S", "sample": "S"}
_NAME_TO_AXIS.update({a: a.upper() for a in "zyx"})
_TYPE_TO_AXIS = {"time": "T", "channel": "C"}
_EXAMPLE_AXES = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}
Node = zarr.Array | zarr.Group


# --------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class _Location:
    """Where a zarr node lives: a local directory or a remote URL (no trailing slash)."""

    where: str
    local: bool

    def child(self, key: str) -> _Location:
        sep = os.sep if self.local else "/"
        return _Location(f"{self.where}{sep}{key}" if key else self.where, self.local)

    @property
    def display(self) -> str:
        """The path from the store directory (first ``*.zarr`` component) on."""
        parts = self.where.replace(os.sep, "/").split("/")
        for i, p in enumerate(parts):
            if p.lower().endswith(".zarr"):
                return "/".join(parts[i:])
        return parts[-1]


def _is_uri(source: Any) -> bool:
    return isinstance(source, str) and "://" in source


def _file_uri_to_path(uri: str) -> str:
    """``file:///abs/x`` -> ``/abs/x``; ``file://rel/x`` -> ``rel/x``; percent-decoded."""
    return file_uri_to_path(uri)


def _locate(source: str | os.PathLike[str]) -> _Location:
    """Resolve a path or URI; a local one must exist."""
    text = os.fspath(source)
    if _is_uri(text) and not text.lower().startswith("file://"):
        return _Location(text.rstrip("/"), local=False)
    path = Path(_file_uri_to_path(text) if _is_uri(text) else text).expanduser()
    if not path.exists():
        kind = "URI" if _is_uri(text) else "path"
        raise SourceNotFoundError(
            f"{text}: no zarr store, group or array at this {kind} ({path.absolute()} does not "
            f"exist); check the {kind} (relative paths are taken from {os.getcwd()})"
        )
    return _Location(str(path.absolute()).rstrip(os.sep) or os.sep, local=True)


# --------------------------------------------------------------------------- probing


def _local_looks_zarr(path: Path) -> bool:
    if any(p.lower().endswith(".zarr") for p in path.parts):
        return True
    return path.is_dir() and any((path / m).exists() for m in _MARKERS)


def is_zarr_source(source: Any) -> bool:
    """Whether one path or URI is for this loader.

    Yes for a path with a ``*.zarr`` component or a directory holding zarr metadata, a
    ``file://`` URI to such a path, and any other URI (``https://``, ``s3://``, ...) that does
    not end in a known non-zarr file suffix (``.tif``, ``.czi``, ...).
    """
    if not isinstance(source, str | os.PathLike) or isinstance(source, bytes):
        return False
    text = os.fspath(source)
    if _is_uri(text):
        if text.lower().startswith("file://"):
            return _local_looks_zarr(Path(_file_uri_to_path(text)))
        return not text.rstrip("/").lower().endswith(_NOT_ZARR_SUFFIXES)
    return _local_looks_zarr(Path(text).expanduser())


def probe_zarr(source: Any, options: dict[str, Any]) -> bool:
    """Registry probe: a zarr path/URI, or a list of paths/URIs of which one is zarr."""
    if isinstance(source, list | tuple):
        return (
            len(source) > 0
            and all(isinstance(s, str | os.PathLike) for s in source)
            and any(is_zarr_source(s) for s in source)
        )
    return is_zarr_source(source)


def _check_not_mixed(sources: Sequence[Any]) -> None:
    uris = [s for s in sources if _is_uri(s)]
    paths = [s for s in sources if not _is_uri(s)]
    if uris and paths:
        raise InputError(
            f"a list of sources must be all paths or all URIs, but this one mixes paths "
            f"({paths[0]!r}, ...) and URIs ({uris[0]!r}, ...); write every entry the same way, "
            "e.g. all as 'file:///abs/x.zarr/group' URIs or all as paths"
        )


# --------------------------------------------------------------------------- opening nodes


def _open_node(loc: _Location, storage_options: dict[str, Any] | None) -> Node:
    """The group or array at ``loc`` (metadata only), with caredask errors."""
    try:
        store: Store
        if loc.local:
            store = zarr.storage.LocalStore(loc.where, read_only=True)
        else:
            store = zarr.storage.FsspecStore.from_url(
                loc.where, storage_options=storage_options, read_only=True
            )
        return zarr.open(store=store, mode="r")
    except CaredaskError:
        raise
    except ImportError as e:
        raise InputError(
            f"{loc.where}: reading this kind of URI needs a package that is not installed "
            f"({e}); install it (e.g. pip install 'caredask[remote]', s3fs or gcsfs)"
        ) from e
    except (FileNotFoundError, zarr.errors.NodeNotFoundError) as e:
        hint = "local zarr metadata (zarr.json, .zgroup or .zarray)" if loc.local else "it"
        raise SourceNotFoundError(
            f"{loc.where}: no zarr group or array here (found no {hint}); check the path/URI "
            "points at a zarr store, group or array"
        ) from e
    except Exception as e:
        raise SourceNotFoundError(
            f"{loc.where}: cannot read the zarr store ({type(e).__name__}: {e}); check the "
            "URI, that the server or bucket is reachable, and storage_options (credentials)"
        ) from e


def _child(group: zarr.Group, key: str, loc: _Location) -> Node:
    try:
        return group[key]
    except KeyError as e:
        raise FormatError(
            f"{loc.child(key).where}: the metadata names {key!r} but there is no such node; "
            "the store is incomplete"
        ) from e


# --------------------------------------------------------------------------- axes


def _letters(names: Sequence[Any], types: Sequence[Any] | None = None) -> str | None:
    """caredask axes for dimension names (and NGFF axis types), or ``None`` if unknown."""
    types = types if types is not None else [None] * len(names)
    out = []
    for name, typ in zip(names, types, strict=True):
        letter = _TYPE_TO_AXIS.get(str(typ).lower()) or _NAME_TO_AXIS.get(str(name).lower())
        if letter is None:
            return None
        out.append(letter)
    return "".join(out) if len(set(out)) == len(out) else None


def _array_dim_names(arr: zarr.Array) -> str | None:
    names: Any = getattr(arr.metadata, "dimension_names", None)
    if names is None:
        names = arr.attrs.get("_ARRAY_DIMENSIONS")  # xarray's convention for zarr v2
    if not names or len(names) != arr.ndim or any(n is None for n in names):
        return None
    return _letters(list(names))


def ome_metadata(group: zarr.Group) -> dict[str, Any]:
    """The NGFF attributes of a group: ``attributes['ome']`` (0.5) or the attributes (0.4)."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, dict) else attrs


def _multiscale_axes(ms: dict[str, Any], ndim: int) -> str | None:
    axes = ms.get("axes")
    if axes is None:  # NGFF 0.1/0.2: always 5-D tczyx
        return "TCZYX" if ndim == 5 else None
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    types = [a.get("type") if isinstance(a, dict) else None for a in axes]
    return _letters(names, types)


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


# --------------------------------------------------------------------------- images


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


def _image(
    arr: zarr.Array, loc: _Location, name: str, axes: str, chunks: Any, extra: Any = ()
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


def _parent_ome_axes(loc: _Location, arr: zarr.Array, options: dict[str, Any]) -> str | None:
    """Axes of an array that is a level of an OME image, from the parent group's metadata."""
    parent, _, key = loc.where.rpartition(os.sep if loc.local else "/")
    if not parent or not key:
        return None
    try:
        group = _open_node(_Location(parent, loc.local), options.get("storage_options"))
    except CaredaskError:
        return None
    if not isinstance(group, zarr.Group):
        return None
    for ms in ome_metadata(group).get("multiscales") or []:
        if any(d.get("path") == key for d in ms.get("datasets", [])):
            return _multiscale_axes(ms, arr.ndim)
    return None


def _open_array(
    arr: zarr.Array, loc: _Location, name: str, axes: str | None, options: dict[str, Any]
) -> LazyImage:
    meta, what = _array_dim_names(arr), "dimension_names"
    ome = _parent_ome_axes(loc, arr, options)
    if meta is None:
        meta, what = ome, "OME multiscales axes"
    else:
        _check_agree(ome, meta, loc.where)
    img_axes = node_axes(axes, meta, arr.ndim, loc.where, what)
    return _image(arr, loc, name, img_axes, options.get("chunks"))


def _check_agree(ome: str | None, dims: str | None, where: str) -> None:
    """Refuse an array whose ``dimension_names`` contradict its OME ``multiscales`` axes."""
    if ome is not None and dims is not None and ome != dims:
        raise FormatError(
            f"{where}: the OME multiscales axes say {ome!r} but the array's dimension_names "
            f"say {dims!r}; the metadata contradict each other, so caredask will not guess: "
            "correct one of them in the store"
        )


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


def _open_ome_image(
    group: zarr.Group, loc: _Location, name: str, axes: str | None, options: dict[str, Any]
) -> LazyImage:
    ms = ome_metadata(group)["multiscales"][0]
    level = options.get("level")
    key = _level_path(ms, 0 if level is None else level, loc.where)
    arr = _child(group, key, loc)
    if not isinstance(arr, zarr.Array):
        raise FormatError(f"{loc.child(key).where}: OME level {key!r} is not an array")
    meta = _multiscale_axes(ms, arr.ndim)
    if meta is not None and len(meta) != arr.ndim:
        meta = None
    _check_agree(meta, _array_dim_names(arr), loc.child(key).where)
    img_axes = node_axes(axes, meta, arr.ndim, loc.where, "OME multiscales axes")
    return _image(arr, loc.child(key), name, img_axes, options.get("chunks"), key)


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


def _open_series(
    group: zarr.Group, loc: _Location, axes: str | None, options: dict[str, Any]
) -> list[LazyImage]:
    keys = _series_paths(group)
    if not keys:
        raise FormatError(
            f"{loc.where}: a bioformats2raw layout without series (no OME/series list and no "
            "group '0'); convert the data again with bioformats2raw"
        )
    images = []
    for key in keys:
        node = _child(group, key, loc)
        if not isinstance(node, zarr.Group) or "multiscales" not in ome_metadata(node):
            raise FormatError(f"{loc.child(key).where}: series {key!r} is not an OME-Zarr image")
        images.append(_open_ome_image(node, loc.child(key), f"{loc.display}/{key}", axes, options))
    return images


def _open_plain_group(
    group: zarr.Group, loc: _Location, axes: str | None, options: dict[str, Any]
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
    loc = _locate(source)
    node = _open_node(loc, options.get("storage_options"))
    if isinstance(node, zarr.Array):
        if options.get("level", 0) not in (0, None):
            raise InputError(f"{loc.where}: level= applies to OME-Zarr images, not an array")
        return [_open_array(node, loc, loc.display, axes, options)]
    ome = ome_metadata(node)
    if ome.get("multiscales"):
        return [_open_ome_image(node, loc, loc.display, axes, options)]
    if "bioformats2raw.layout" in ome:
        return _open_series(node, loc, axes, options)
    return _open_plain_group(node, loc, axes, options)


def _all_local(source: Any) -> bool:
    """No remote URI (``file://`` counts as local) in a source or list of sources."""
    items = source if isinstance(source, list | tuple) else [source]
    texts = [os.fspath(s) for s in items if isinstance(s, str | os.PathLike)]
    return not any(_is_uri(t) and not t.lower().startswith("file://") for t in texts)


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
    with zarr_config(local=_all_local(source)):
        if not isinstance(source, list | tuple):
            return _open_one(source, axes, options)
        _check_not_mixed(source)
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
