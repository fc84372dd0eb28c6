"""csbdeep's transform protocol, on numpy and dask arrays alike.

A :class:`Transform` maps a generator of ``(x, y, axes, mask)`` tuples to another generator;
``size`` is the number of outputs per input.  The built-ins here draw no random numbers and
stay lazy on dask arrays.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask.array as da
import numpy as np

from .axes import axes_check_and_normalize, move_image_axes
from .errors import AxesError, InputError

__all__ = [
    "SourcedItem",
    "Transform",
    "broadcast_target",
    "crop_images",
    "is_rng_free",
    "item_sources",
    "mark_rng_free",
    "permute_axes",
]

Item = tuple[Any, Any, str, Any]
Gen = Callable[[Iterator[Item]], Iterator[Item]]


class Transform(namedtuple("Transform", ("name", "generator", "size"))):
    """A named generator transform with ``size`` outputs per input (csbdeep's protocol)."""

    __slots__ = ()

    @staticmethod
    def identity() -> Transform:
        """The transform that yields its inputs unchanged."""

        def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
            yield from inputs

        return Transform("Identity", mark_rng_free(_gen), 1)


class SourcedItem(tuple):
    """An ``(x, y, axes, mask)`` item that also says which files ``x`` and ``y`` come from.

    It unpacks and indexes like the plain 4-tuple of csbdeep's protocol; the loaders' RawData
    constructors yield it so that a transform's error can name the files (``sources``).
    """

    sources: tuple[str, str]

    def __new__(cls, item: Sequence[Any], sources: tuple[str, str] = ("", "")) -> SourcedItem:
        self = super().__new__(cls, item)
        self.sources = sources
        return self


def item_sources(item: Any, i: int) -> tuple[str, str]:
    """``(source, target)`` names of an item: its files if known, else ``image {i}``."""
    sources = getattr(item, "sources", ("", ""))
    fallback = f"image {i}"
    return (sources[0] or fallback, sources[1] or sources[0] or fallback)


def mark_rng_free(f: Gen) -> Gen:
    """Declare that a generator function draws no random numbers (lets the pipeline batch)."""
    f._caredask_rng_free = True  # type: ignore[attr-defined]
    return f


def is_rng_free(f: Any) -> bool:
    """Whether ``f`` was declared free of random draws by :func:`mark_rng_free`."""
    return bool(getattr(f, "_caredask_rng_free", False))


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
