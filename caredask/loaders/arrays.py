"""Loader for in-memory and array-like sources: numpy, dask, zarr arrays, memmaps, h5py datasets.

One array is one image; a list or tuple of arrays is one image per element.  A stacked array
(images along axis 0) is split only when the caller asks with ``stack=True``.  Arrays carry
no axes metadata, so ``axes`` is required.  Nothing is read when opening: numpy arrays are
wrapped with :func:`dask.array.from_array` (deterministic, content-tokenised names), other
array-likes with ``lock=False`` so their reads stay lazy.
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np

from ..axes import axes_check_and_normalize, suggest_axes
from ..errors import AxesError, InputError
from .base import LazyImage
from .registry import register_loader

__all__ = ["is_array_like", "open_arrays", "probe_arrays"]

_OPTIONS = frozenset({"chunks", "stack"})
_ARRAY_ATTRS = ("shape", "dtype", "ndim", "__getitem__")


def is_array_like(x: Any) -> bool:
    """Whether ``x`` is read as one array image.

    numpy and dask arrays, and any object with ``shape``, ``dtype``, ``ndim`` and
    ``__getitem__`` (zarr arrays, memmaps, h5py datasets), but never a ``str``, ``bytes`` or
    path.
    """
    if isinstance(x, str | bytes | os.PathLike):
        return False
    if isinstance(x, np.ndarray | da.Array):
        return True
    return all(hasattr(x, a) for a in _ARRAY_ATTRS)


def probe_arrays(source: Any, options: dict[str, Any]) -> bool:
    """Say yes to one array-like or a non-empty list/tuple made only of array-likes."""
    if is_array_like(source):
        return True
    return (
        isinstance(source, list | tuple)
        and len(source) > 0
        and all(is_array_like(s) for s in source)
    )


def _type_name(x: Any) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


def _check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(
            f"array source: unknown option(s) {unknown}; arrays accept only {sorted(_OPTIONS)}"
        )


def _to_dask(x: Any, chunks: Any, stack: bool) -> da.Array:
    """Wrap ``x`` lazily; with ``stack``, one chunk per image along axis 0."""
    if isinstance(x, da.Array):
        return x if chunks is None or stack else x.rechunk(chunks)
    kind = np.dtype(x.dtype).kind
    if kind not in "biufc":
        raise InputError(
            f"array of type {_type_name(x)} has dtype {x.dtype}, which is not numeric; "
            "give images of bool, integer, float or complex dtype"
        )
    if stack:
        spec: Any = (1,) + ("auto",) * (len(x.shape) - 1)
    else:
        spec = "auto" if chunks is None else chunks
    if isinstance(x, np.ndarray) and not isinstance(x, np.memmap):
        return da.from_array(x, chunks=spec)
    return da.from_array(x, chunks=spec, lock=False)


def _checked_axes(axes: str | None, data: da.Array, name: str, stack: bool) -> str:
    per = "each image arr[i] of the stack" if stack else "the array"
    if axes is None:
        raise AxesError(
            f"{name}: arrays carry no axes metadata ({per} has shape {data.shape}); "
            "pass axes=... with one letter of 'STCZYX' per dimension, e.g. "
            f"axes={suggest_axes(data.shape)!r}"
        )
    axes = axes_check_and_normalize(axes)
    if len(axes) != data.ndim:
        raise AxesError(
            f"{name}: axes {axes!r} have {len(axes)} letters but {per} has shape {data.shape} "
            f"({data.ndim} dimensions); pass axes with one letter per dimension"
        )
    return axes


def open_arrays(source: Any, axes: str | None = None, **options: Any) -> list[LazyImage]:
    """Open one array or a list/tuple of arrays as images, reading nothing.

    Parameters
    ----------
    source : array-like or list/tuple of array-likes
        numpy or dask arrays, or objects with ``shape``/``dtype``/``ndim``/``__getitem__``.
    axes : str
        Axes of each image (one letter of ``STCZYX`` per dimension); required.
    **options
        ``chunks`` (dask chunks for wrapped arrays, default ``'auto'``; dask arrays are
        rechunked only when given) and ``stack`` (bool: split each array along axis 0 into
        images, default False).

    Returns
    -------
    list of LazyImage
        Named ``'array[i]'`` in input order (stacks: their images in order).

    Raises
    ------
    AxesError
        ``axes`` missing or not one letter per dimension.
    InputError
        An unknown option or a non-numeric dtype.
    """
    _check_options(options)
    chunks = options.get("chunks")
    stack = bool(options.get("stack", False))
    arrays = list(source) if isinstance(source, list | tuple) else [source]
    images: list[LazyImage] = []
    for arr in arrays:
        data = _to_dask(arr, chunks, stack)
        parts = [data[i] for i in range(data.shape[0])] if stack else [data]
        for part in parts:
            if stack and chunks is not None:
                part = part.rechunk(chunks)
            name = f"array[{len(images)}]"
            img_axes = _checked_axes(axes, part, name, stack)
            images.append(LazyImage(part, img_axes, name, source=_type_name(arr)))
    return images


register_loader("arrays", probe_arrays, open_arrays)
