"""Transforms that multiply the images: flips, 90-degree rotations, channels one by one.

Each is a csbdeep :class:`~caredask.transforms.Transform` with ``size > 1``: every input pair
``(x, y, axes, mask)`` becomes ``size`` pairs, in a fixed order, with ``x``, ``y`` and the mask
transformed identically.  They slice or view (numpy) or add lazy slicing to the graph (dask),
draw no random numbers and are marked rng-free.

Each transform also labels its outputs (``'flipX'``, ``'rot90'``, ``'c1'``...);
:func:`~caredask.transforms.transform_labels` combines the labels of a transform list in
csbdeep's output order, so a patch's image name can say which flip, rotation or channel it
came from.  csbdeep's anisotropic distortions and FLAME's frame accumulation live in
:mod:`caredask.transforms.distortions` and :mod:`caredask.transforms.frames`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dask.array as da
import numpy as np

from ..axes import axes_check_and_normalize
from ..errors import AxesError, InputError
from .protocol import Item, Transform, label_outputs, mark_rng_free

__all__ = ["flip_xy", "rotate_xy", "split_channels"]


def _flip(a: Any, axes_flipped: tuple[int, ...]) -> Any:
    if a is None or not axes_flipped:
        return a
    return a[
        tuple(slice(None, None, -1) if i in axes_flipped else slice(None) for i in range(a.ndim))
    ]


def flip_xy(flips: Sequence[str] = ("", "X", "Y", "XY")) -> Transform:
    """Mirror every image pair: by default the identity, flip X, flip Y, flip both (size 4).

    Parameters
    ----------
    flips : sequence of str
        One entry per output: the axes to reverse (letters of ``ZYX``; ``''`` keeps the image).

    Returns
    -------
    Transform
        ``size = len(flips)``; outputs labelled ``'flipX'``, ``'flipYX'``... (``''`` for the
        identity).

    Raises
    ------
    InputError
        Empty or repeated entries, letters outside ``ZYX``.
    AxesError
        (When applied) an image lacks a flipped axis.
    """
    norm = []
    for f in flips:
        f = axes_check_and_normalize(f) if f else ""
        if any(a not in "ZYX" for a in f):
            raise InputError(f"flip_xy: {f!r} flips a non-spatial axis; use letters of 'ZYX'")
        norm.append(f)
    if not norm or len(set(map(frozenset, norm))) != len(norm):
        raise InputError(f"flip_xy: flips {list(flips)!r} must be non-empty and distinct")

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for x, y, axes, mask in inputs:
            axes = axes_check_and_normalize(axes)
            for f in norm:
                missing = [a for a in f if a not in axes]
                if missing:
                    raise AxesError(
                        f"flip_xy: image with axes {axes} has no axis {missing[0]}; "
                        "flip only axes the images have"
                    )
                dims = tuple(axes.index(a) for a in f)
                yield _flip(x, dims), _flip(y, dims), axes, _flip(mask, dims)

    labels = [f"flip{f}" if f else "" for f in norm]
    return Transform(
        f"Flip ({', '.join(labels)})", mark_rng_free(label_outputs(_gen, labels)), len(norm)
    )


def _rot90(a: Any, k: int, dims: tuple[int, int]) -> Any:
    if a is None or k == 0:
        return a
    if isinstance(a, da.Array):
        return da.rot90(a, k, axes=dims)
    return np.rot90(a, k, axes=dims)


def rotate_xy(angles: Sequence[int] = (0, 90, 180, 270)) -> Transform:
    """Rotate every image pair in the YX plane by multiples of 90 degrees (default size 4).

    A rotation by ``angle`` is ``np.rot90(a, angle // 90, axes=(Y, X))``.  Rotations by 90 and
    270 degrees swap the Y and X extents of the image: with a non-square patch size every image
    must hold the patch in both orientations (or use ``angles=(0, 180)``).

    Parameters
    ----------
    angles : sequence of int
        Distinct angles from ``0, 90, 180, 270``, one per output.

    Returns
    -------
    Transform
        ``size = len(angles)``; outputs labelled ``'rot90'``... (``''`` for 0).
    """
    ks = []
    for ang in angles:
        if int(ang) not in (0, 90, 180, 270) or int(ang) != ang:
            raise InputError(f"rotate_xy: angle {ang!r} must be one of 0, 90, 180, 270")
        ks.append(int(ang) // 90)
    if not ks or len(set(ks)) != len(ks):
        raise InputError(f"rotate_xy: angles {list(angles)!r} must be non-empty and distinct")

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for x, y, axes, mask in inputs:
            axes = axes_check_and_normalize(axes)
            if "Y" not in axes or "X" not in axes:
                raise AxesError(
                    f"rotate_xy: image with axes {axes} needs both Y and X axes; "
                    "rotate only YX images"
                )
            dims = (axes.index("Y"), axes.index("X"))
            for k in ks:
                yield _rot90(x, k, dims), _rot90(y, k, dims), axes, _rot90(mask, k, dims)

    labels = [f"rot{90 * k}" if k else "" for k in ks]
    return Transform(
        f"Rotate YX ({', '.join(labels)})", mark_rng_free(label_outputs(_gen, labels)), len(ks)
    )


def _channel(a: Any, c: int, ch: int, keep: bool) -> Any:
    if a is None:
        return None
    pick: int | slice = slice(c, c + 1) if keep else c
    return a[tuple(pick if i == ch else slice(None) for i in range(a.ndim))]


def split_channels(n_channels: int, keep_axis: bool = False) -> Transform:
    """Channels one by one: each ``C``-axis pair becomes ``n_channels`` single-channel pairs.

    Parameters
    ----------
    n_channels : int
        Number of channels of every image (the transform's ``size`` must be known up front).
    keep_axis : bool
        Keep ``C`` as a length-1 axis (``patch_size`` then has a 1 for it); by default it is
        dropped from the images and the axes.

    Returns
    -------
    Transform
        ``size = n_channels``; outputs labelled ``'c0'``, ``'c1'``...

    Raises
    ------
    InputError
        (When applied) an image has another number of channels.
    AxesError
        (When applied) an image has no ``C`` axis.
    """
    if int(n_channels) != n_channels or n_channels < 1:
        raise InputError(f"split_channels: n_channels must be a positive int, got {n_channels!r}")
    n = int(n_channels)

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for x, y, axes, mask in inputs:
            axes = axes_check_and_normalize(axes)
            if "C" not in axes:
                raise AxesError(f"split_channels: image with axes {axes} has no C axis")
            ch = axes.index("C")
            for a, what in ((x, "source"), (y, "target"), (mask, "mask")):
                if a is not None and a.shape[ch] != n:
                    raise InputError(
                        f"split_channels: {what} has {a.shape[ch]} channels (shape {a.shape}, "
                        f"axes {axes}), expected n_channels={n}; pass the right n_channels"
                    )
            out_axes = axes if keep_axis else axes.replace("C", "")
            for c in range(n):
                yield (
                    _channel(x, c, ch, keep_axis),
                    _channel(y, c, ch, keep_axis),
                    out_axes,
                    _channel(mask, c, ch, keep_axis),
                )

    labels = [f"c{c}" for c in range(n)]
    return Transform(f"Split {n} channels", mark_rng_free(label_outputs(_gen, labels)), n)
