"""csbdeep's built-in transforms that reorder, crop or broadcast images without multiplying them.

Each draws no random numbers and stays lazy on dask arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dask.array as da
import numpy as np

from ..axes import axes_check_and_normalize, move_image_axes
from ..errors import AxesError, InputError
from .protocol import Item, Transform, mark_rng_free

__all__ = ["broadcast_target", "crop_images", "permute_axes"]


def permute_axes(axes: str) -> Transform:
    """Reorder (and add or drop singleton) axes of every image to ``axes``."""
    axes = axes_check_and_normalize(axes)

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for x, y, axes_in, mask in inputs:
            axes_in = axes_check_and_normalize(axes_in)
            if axes_in != axes:
                x = move_image_axes(x, axes_in, axes, True)
                y = move_image_axes(y, axes_in, axes, True)
                if mask is not None:
                    mask = move_image_axes(mask, axes_in, axes)
            yield x, y, axes, mask

    return Transform(f"Permute axes to {axes}", mark_rng_free(_gen), 1)


def crop_images(slices: Sequence[slice]) -> Transform:
    """Crop every image (and mask) with ``slices``, one per axis."""
    slices = tuple(slices)

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for x, y, axes, mask in inputs:
            if len(axes) != len(slices):
                raise AxesError(
                    f"crop_images: {len(slices)} slices for an image with axes {axes!r}; "
                    "give one slice per axis"
                )
            yield x[slices], y[slices], axes, (mask[slices] if mask is not None else None)

    return Transform("Crop images", mark_rng_free(_gen), 1)


def _broadcast(y: Any, shape: tuple[int, ...]) -> Any:
    if isinstance(y, da.Array):
        return da.broadcast_to(y, shape)
    return np.broadcast_to(y, shape)


def broadcast_target(target_axes: str | None = None) -> Transform:
    """Broadcast the target to the source's shape (after moving its axes to the source's)."""

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for x, y, axes_x, mask in inputs:
            if target_axes is not None:
                ta = axes_check_and_normalize(target_axes, length=y.ndim)
                y = move_image_axes(y, ta, axes_x, True)
            try:
                y = _broadcast(y, x.shape)
            except ValueError as e:
                raise InputError(
                    f"broadcast_target: target of shape {y.shape} cannot be broadcast to the "
                    f"source shape {x.shape}; check target_axes"
                ) from e
            yield x, y, axes_x, mask

    return Transform("Broadcast target image to the shape of source", mark_rng_free(_gen), 1)
