"""Pixel masks from any source: which pixels may be patch centres, as csbdeep's boolean mask.

A mask image (a TIFF, a Zarr array, an OME-Zarr label image) becomes csbdeep's pixel mask:
``True`` where the mask is non-zero, or - for a label image with ``values`` - where the label
is one of ``values``.  The conversion is one ``map_blocks`` over the lazy mask; fitting it to its
image only broadcasts a missing or size-1 channel axis (the mask is then the same for every
channel); any other difference in shape is an error naming both.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from ..errors import InputError
from ..loaders.base import LazyImage

__all__ = ["eligible_pixels", "fit_mask", "label_mask", "pair_masks"]


def label_mask(block: np.ndarray, values: tuple[int, ...] | None) -> np.ndarray:
    """Kernel: ``block != 0``, or ``np.isin(block, values)`` when labels are listed."""
    if values is None:
        return np.not_equal(block, 0)
    return np.isin(block, np.asarray(values))


def eligible_pixels(mask: da.Array, values: Sequence[int] | None = None) -> da.Array:
    """Dask twin of :func:`label_mask`: the boolean pixel mask of a lazy mask or label image."""
    vals = None if values is None else tuple(int(v) for v in values)
    if vals is not None and not vals:
        raise InputError("mask values: give at least one label value (or None for any label)")
    return da.map_blocks(
        label_mask, mask, dtype=bool, meta=np.empty((0,) * mask.ndim, dtype=bool), values=vals
    )


def _describe(img: LazyImage) -> str:
    return f"{img.source or img.name} (shape {tuple(img.data.shape)}, axes {img.axes!r})"


def fit_mask(mask: LazyImage, image: LazyImage) -> da.Array:
    """The mask's pixels with the image's shape (a missing or size-1 channel is broadcast).

    Raises
    ------
    InputError
        The shapes differ otherwise; the message names the mask and the image.
    """
    m, ax, shape = mask.data, mask.axes, tuple(image.data.shape)
    if "C" in image.axes and "C" not in ax and ax == image.axes.replace("C", ""):
        m, ax = da.expand_dims(m, image.axes.index("C")), image.axes
    if ax == image.axes and "C" in ax and m.shape != shape:
        c = ax.index("C")
        rest_equal = m.shape[:c] + m.shape[c + 1 :] == shape[:c] + shape[c + 1 :]
        if m.shape[c] == 1 and rest_equal:
            chunks = (*m.chunks[:c], (shape[c],), *m.chunks[c + 1 :])
            m = da.broadcast_to(m, shape, chunks=chunks)
    if ax != image.axes or m.shape != shape:
        raise InputError(
            f"mask {_describe(mask)} does not match its image {_describe(image)}; give a mask "
            "of the image's shape (a missing or size-1 channel axis is broadcast)"
        )
    return m


def pair_masks(images: Sequence[LazyImage], masks: Sequence[LazyImage]) -> list[LazyImage]:
    """Masks in the order of ``images``: by name when every image has a mask of its name,
    else in order (then the counts must be equal).

    Raises
    ------
    InputError
        Masks cannot be paired with the images.
    """
    by_name = {m.name: m for m in masks}
    if len(by_name) == len(masks) and all(im.name in by_name for im in images):
        return [by_name[im.name] for im in images]
    if len(masks) != len(images):
        missing = [im.name for im in images if im.name not in by_name][:3]
        raise InputError(
            f"{len(masks)} masks for {len(images)} images, and no mask of the same name for "
            f"{missing}; give one mask per image, named like the image or in the same order"
        )
    return list(masks)
