"""Loaders: every input kind caredask reads, opened lazily as :class:`LazyImage` lists.

``open_images(source, axes=None, **options)`` dispatches on the kind of ``source``:
numpy / dask arrays (or lists of them), TIFF files, lists of files and directories (and, in
``caredask.loaders.*`` modules registered below, further formats).  Opening reads metadata
only, never pixels.

Layout: :mod:`.registry` (dispatch), :mod:`.discover` (what a path or URI is, folder
listings, patterns), :mod:`.base` (``LazyImage``, readers to dask), one module per format
(:mod:`.arrays`, :mod:`.tiff` with :mod:`.tiff_meta`, :mod:`.czi`, :mod:`.bioimage`,
:mod:`.custom`), and Zarr as :mod:`.zarrs` (plain groups and arrays, the loader) on
:mod:`.zarr_base` (axes, images), :mod:`.ome_zarr` (NGFF metadata) and :mod:`.zarr_stores`
(local and remote stores).
"""

from __future__ import annotations

from .base import ArrayReader, LazyImage, file_identity, reader_to_dask
from .registry import open_images, register_loader

__all__ = [
    "ArrayReader",
    "LazyImage",
    "file_identity",
    "open_images",
    "reader_to_dask",
    "register_loader",
]
