"""Rewrite any input caredask reads as sharded Zarr v3 with OME-Zarr 0.5 metadata.

Layout of ``OUT`` (a local directory):

* one image: an OME-Zarr 0.5 image; ``OUT/zarr.json`` holds ``attributes.ome.multiscales``
  (one level, path ``"0"``) and the pixels are the array ``OUT/0``;
* several images (a folder, a list, a multi-scene CZI, a bioformats2raw store): a
  bioformats2raw layout (``attributes.ome['bioformats2raw.layout'] = 3``), image ``i`` as an
  OME-Zarr image in ``OUT/i`` in the order caredask lists them, the list in
  ``OUT/OME/zarr.json`` (``attributes.ome.series``); each image's original name is its
  multiscales ``name``.

caredask (``open_images``) reads both back as the same images in the same order; ome-zarr-py
reads each image group.  Axes are written in NGFF order (time, then sample/channel, then
space); ``dimension_names`` repeat the axis names.  Inner chunks are the patch size along the
spatial axes, whole along channels and 1 along time and sample, so a random patch decodes few
small chunks; shards group inner chunks to about ``shard_bytes`` so that a file system sees
few, large files.  Pixels stream with dask, one shard per task (no task ever holds the whole
image), into ``OUT.partial``, which is renamed to ``OUT`` once complete.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import dask.array as da
import numpy as np
import zarr

from ..errors import InputError
from ..loaders import LazyImage, open_images
from ..loaders.codecs import zarr_config

__all__ = ["DEFAULT_PATCH", "NGFF_ORDER", "convert_to_zarr", "inner_chunks_for", "shard_shape_for"]

NGFF_ORDER = "TSCZYX"
"""Axis order of converted images: time, then sample/channel, then space (NGFF 0.5)."""
DEFAULT_PATCH: dict[str, int] = {"Z": 16, "Y": 64, "X": 64}
"""Patch size inner chunks are sized for when none is given."""
_SPACE = "ZYX"
_AXIS = {
    "T": {"name": "t", "type": "time"},
    "S": {"name": "s"},
    "C": {"name": "c", "type": "channel"},
    "Z": {"name": "z", "type": "space"},
    "Y": {"name": "y", "type": "space"},
    "X": {"name": "x", "type": "space"},
}


def inner_chunks_for(
    shape: Sequence[int], axes: str, patch_size: Mapping[str, int] | None = None
) -> tuple[int, ...]:
    """Inner chunk shape for patches of ``patch_size`` (axis letter -> size).

    Spatial axes: the patch size (``DEFAULT_PATCH`` when omitted), at most the image's extent;
    ``C``: whole (a patch holds every channel); ``T`` and ``S``: 1.
    """
    patch = {**DEFAULT_PATCH, **dict(patch_size or {})}
    out = []
    for n, a in zip(shape, axes, strict=True):
        size = n if a == "C" else patch.get(a, 1) if a in _SPACE else 1
        out.append(max(1, min(int(size), int(n))))
    return tuple(out)


def shard_shape_for(
    shape: Sequence[int],
    axes: str,
    inner: Sequence[int],
    itemsize: int,
    shard_bytes: int = 128 * 2**20,
) -> tuple[int, ...]:
    """Shards of whole inner chunks, about ``shard_bytes`` (at most), grown along space.

    The spatial axis with the smallest shard extent doubles (``X`` first on ties) until a
    doubling would pass ``shard_bytes`` or every spatial axis covers the image.
    """
    shard = list(inner)
    limit = [math.ceil(n / c) * c for n, c in zip(shape, inner, strict=True)]
    while True:
        grow = [i for i, a in enumerate(axes) if a in _SPACE and shard[i] < limit[i]]
        if not grow:
            break
        i = min(reversed(grow), key=lambda j: shard[j])
        new = min(2 * shard[i], limit[i])
        if math.prod(shard) // shard[i] * new * itemsize > shard_bytes:
            break
        shard[i] = new
    return tuple(shard)


def _ngff_attrs(
    name: str, axes: str, scale: Mapping[str, float] | None, unit: str | None
) -> dict[str, Any]:
    entries = []
    for a in axes:
        entry: dict[str, Any] = dict(_AXIS[a])
        if a in _SPACE and unit is not None:
            entry["unit"] = unit
        entries.append(entry)
    factors = [float((scale or {}).get(a, 1.0)) for a in axes]
    dataset = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": factors}]}
    ms = {"name": name, "axes": entries, "datasets": [dataset]}
    return {"ome": {"version": "0.5", "multiscales": [ms]}}


def _check_axes(img: LazyImage) -> str:
    if len(img.axes) > 5 or sum(a in _SPACE for a in img.axes) < 2:
        raise InputError(
            f"{img.source or img.name}: axes {img.axes!r} cannot be an OME-Zarr image (2 to 5 "
            "axes, at least 2 of them spatial); pass axes= or drop axes (e.g. select a series)"
        )
    return "".join(a for a in NGFF_ORDER if a in img.axes)


def _write_image(
    group: zarr.Group, img: LazyImage, inner_spec: Any, shard_bytes: int, meta: dict[str, Any]
) -> None:
    """One OME-Zarr image into ``group``: metadata, then the pixels, one shard per task."""
    axes = _check_axes(img)
    data = img.data.transpose([img.axes.index(a) for a in axes])
    itemsize = np.dtype(data.dtype).itemsize
    if inner_spec is None or isinstance(inner_spec, Mapping):
        inner = inner_chunks_for(data.shape, axes, inner_spec)
    else:
        inner = tuple(min(int(c), n) for c, n in zip(inner_spec, data.shape, strict=True))
    shards = meta["shard_shape"] or shard_shape_for(data.shape, axes, inner, itemsize, shard_bytes)
    if any(s % c for s, c in zip(shards, inner, strict=True)):
        raise InputError(
            f"{img.source or img.name}: shard shape {tuple(shards)} is not a multiple of the "
            f"inner chunks {inner} (axes {axes}); choose shards of whole inner chunks"
        )
    group.attrs.update(_ngff_attrs(img.name, axes, meta["scale"], meta["unit"]))
    with zarr_config():
        arr = group.create_array(
            "0",
            shape=data.shape,
            dtype=data.dtype,
            chunks=inner,
            shards=tuple(shards),
            fill_value=0,
            dimension_names=[_AXIS[a]["name"] for a in axes],
        )
    step = tuple(min(s, n) for s, n in zip(shards, data.shape, strict=True))
    da.store(data.rechunk(step), cast(Any, arr), lock=False)


def _prepare(out: Path, overwrite: bool) -> Path:
    if "://" in str(out):
        raise InputError(f"{out}: convert writes to a local directory; give a local path")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass overwrite=True (--overwrite) or another name")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():  # left by an interrupted conversion
        shutil.rmtree(partial)
    return partial


def convert_to_zarr(
    source: Any,
    out: str | Path,
    *,
    axes: str | None = None,
    patch_size: Mapping[str, int] | None = None,
    inner_chunks: Sequence[int] | None = None,
    shard_shape: Sequence[int] | None = None,
    shard_bytes: int = 128 * 2**20,
    scale: Mapping[str, float] | None = None,
    unit: str | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Rewrite the images of ``source`` as sharded OME-Zarr 0.5 at ``out`` (module docstring).

    Parameters
    ----------
    source : path, URI, array or list of them
        Anything :func:`caredask.open_images` reads (TIFF, CZI, Zarr, folders, ...).
    out : str or Path
        Local output directory (e.g. ``data.zarr``); must not exist unless ``overwrite``.
    axes : str, optional
        Axes of the source images when their metadata has none.
    patch_size : mapping, optional
        Axis letter -> patch size the inner chunks are sized for (default ``DEFAULT_PATCH``).
    inner_chunks, shard_shape : sequence of int, optional
        Explicit inner chunk / shard shapes in NGFF axis order (shards: multiples of chunks).
    shard_bytes : int
        Target uncompressed shard size when ``shard_shape`` is not given (default 128 MiB).
    scale : mapping, optional
        Axis letter -> pixel size, written as the level's scale transformation (default 1).
    unit : str, optional
        Unit of the spatial axes (e.g. ``"micrometer"``); omitted when not given.
    overwrite : bool
        Replace an existing ``out`` (only after the new one is complete).
    **options
        Passed to :func:`caredask.open_images` (e.g. ``pattern=``, ``level=``).

    Returns
    -------
    Path
        ``out``.  Computes with the current dask scheduler (threads, processes, a cluster).
    """
    out = Path(out)
    images = open_images(source, axes, **options)
    partial = _prepare(out, overwrite)
    meta = {"shard_shape": shard_shape, "scale": scale, "unit": unit}
    inner_spec: Any = inner_chunks if inner_chunks is not None else patch_size
    root = zarr.open_group(partial, mode="w", zarr_format=3)
    if len(images) == 1:
        _write_image(root, images[0], inner_spec, shard_bytes, meta)
    else:
        keys = [str(i) for i in range(len(images))]
        root.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
        root.create_group("OME").attrs["ome"] = {"version": "0.5", "series": keys}
        for key, img in zip(keys, images, strict=True):
            _write_image(root.create_group(key), img, inner_spec, shard_bytes, meta)
    _replace(partial, out)
    return out


def _replace(partial: Path, out: Path) -> None:
    """Put the complete ``partial`` store in the place of whatever ``out`` is."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    partial.rename(out)
