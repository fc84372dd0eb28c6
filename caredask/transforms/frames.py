"""Frame accumulation (FLAME-CARE): low- and high-SNR images as sums of frames of one stack.

From a stack with a frame axis, the source is the sum of some frames and the target the sum of
others: the first ``n`` and the first ``m`` frames (FLAME's scheme; the target then contains the
source's frames, so their noise is correlated) or disjoint ranges such as ``range(0, 5)`` and
``range(5, 45)``.  Sums are lazy dask reductions in an **explicit accumulator dtype**
(``uint32`` by default): nothing is silently widened to 64 bits, and a dtype that could
overflow for the input dtype's extreme values times the number of frames is an error unless
``check_overflow=False`` (integer sums then wrap around).  A float accumulator for integer
frames must represent every possible sum exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import DTypeLike

from ..axes import axes_check_and_normalize
from ..errors import AxesError, InputError
from ..loaders.base import LazyImage
from .protocol import Item, Transform, item_sources, mark_rng_free

__all__ = [
    "FrameSpec",
    "accumulate_frames",
    "accumulate_image",
    "check_accumulator",
    "frame_index",
    "sum_frames",
    "sum_frames_numpy",
]

FrameSpec = int | slice | range | Sequence[int]


def frame_index(frames: FrameSpec, n_frames: int, where: str = "stack") -> slice | np.ndarray:
    """The frames to sum, as a slice (contiguous) or an index array.

    ``n`` means the first ``n`` frames; a slice or range must lie inside the stack; a sequence
    of ints must hold distinct frame indices.
    """
    if isinstance(frames, int | np.integer):
        if not 1 <= frames <= n_frames:
            raise InputError(
                f"{where}: cannot sum the first {frames} frames of a stack of {n_frames}; "
                f"ask for 1..{n_frames}"
            )
        return slice(0, int(frames))
    if isinstance(frames, slice):
        if frames.stop is not None and frames.stop > n_frames:
            raise InputError(
                f"{where}: frames {frames} end after the last frame ({n_frames} frames); "
                "shorten the range"
            )
        idx = np.arange(n_frames)[frames]
    else:
        idx = np.asarray(list(frames), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
            raise InputError(
                f"{where}: frames {list(map(int, idx))} outside 0..{n_frames - 1}; "
                "give frame indices inside the stack"
            )
        if len(np.unique(idx)) != len(idx):
            raise InputError(
                f"{where}: frames {list(map(int, idx))} repeat a frame; list each once"
            )
    if idx.size == 0:
        raise InputError(f"{where}: frames {frames!r} select no frame; select at least one")
    if idx.size == 1 or np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _count(index: slice | np.ndarray) -> int:
    return int(index.stop - index.start) if isinstance(index, slice) else int(index.size)


def check_accumulator(in_dtype: DTypeLike, acc_dtype: DTypeLike, n: int, where: str = "") -> None:
    """Refuse an accumulator that cannot hold every sum of ``n`` values of ``in_dtype``.

    Raises
    ------
    InputError
        Integer accumulator for non-integer input, possible overflow, or a float accumulator
        too narrow to represent every integer sum exactly.
    """
    fin, facc = np.dtype(in_dtype), np.dtype(acc_dtype)
    if facc.kind not in "uif":
        raise InputError(f"{where}accumulator dtype {facc} must be an integer or float dtype")
    if fin.kind not in "buif":
        raise InputError(f"{where}cannot sum frames of dtype {fin}; use numeric images")
    if fin.kind in "f":
        if facc.kind != "f":
            raise InputError(
                f"{where}cannot sum {fin} frames into integer dtype {facc}; use a float dtype"
            )
        return
    lo, hi = (0, 1) if fin.kind == "b" else (int(np.iinfo(fin).min), int(np.iinfo(fin).max))
    lo, hi = n * lo, n * hi
    if facc.kind == "f":
        exact = 2 ** (np.finfo(facc).nmant + 1)
        if max(hi, -lo) > exact:
            raise InputError(
                f"{where}{facc} cannot represent every sum of {n} {fin} frames exactly (up to "
                f"{max(hi, -lo)} > 2**{np.finfo(facc).nmant + 1}); use a wider dtype or pass "
                "check_overflow=False"
            )
        return
    info = np.iinfo(facc)
    if hi > info.max or lo < info.min:
        raise InputError(
            f"{where}the sum of {n} {fin} frames may overflow {facc} (range {lo}..{hi} vs "
            f"{info.min}..{info.max}); use a wider dtype (e.g. 'uint64' or 'int64') or pass "
            "check_overflow=False"
        )


def sum_frames_numpy(
    data: np.ndarray, frames: FrameSpec, axis: int, dtype: DTypeLike = "uint32"
) -> np.ndarray:
    """numpy twin of :func:`sum_frames` (no checks)."""
    index = frame_index(frames, data.shape[axis])
    sel = tuple(index if i == axis else slice(None) for i in range(data.ndim))
    return np.sum(data[sel], axis=axis, dtype=dtype)


def sum_frames(
    data: Any,
    frames: FrameSpec,
    axis: int,
    dtype: DTypeLike = "uint32",
    check_overflow: bool = True,
    where: str = "",
) -> da.Array:
    """Lazy sum of ``frames`` along ``axis`` in accumulator ``dtype`` (a dask reduction).

    Parameters
    ----------
    data : dask or numpy array
        The stack.
    frames : int, slice, range or sequence of int
        ``n``: the first ``n`` frames; otherwise the frames to sum.
    axis : int
        The frame axis (dropped from the result).
    dtype : dtype
        Accumulator and result dtype.
    check_overflow : bool
        Raise :class:`~caredask.errors.InputError` if a sum of the selected number of frames of
        ``data``'s dtype could overflow ``dtype`` (or be inexact in a float dtype).
    where : str
        Name of the image, for messages.
    """
    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data))
    axis = axis % arr.ndim
    label = f"{where}: " if where else ""
    index = frame_index(frames, arr.shape[axis], where or "stack")
    if check_overflow:
        check_accumulator(arr.dtype, dtype, _count(index), label)
    sel = tuple(index if i == axis else slice(None) for i in range(arr.ndim))
    return da.sum(arr[sel], axis=axis, dtype=dtype)


def accumulate_image(
    image: LazyImage,
    frames: FrameSpec,
    frame_axis: str = "T",
    dtype: DTypeLike = "uint32",
    check_overflow: bool = True,
) -> LazyImage:
    """A :class:`~caredask.loaders.LazyImage` summed over ``frames`` of ``frame_axis``.

    The frame axis is dropped from the axes; the name records the frames summed.
    """
    axis = _frame_axis(image.axes, frame_axis, image.source or image.name)
    data = sum_frames(image.data, frames, axis, dtype, check_overflow, image.source or image.name)
    desc = frames if isinstance(frames, int) else _describe(frames)
    return LazyImage(
        data, image.axes.replace(frame_axis.upper(), ""), f"{image.name}[{desc}]", image.source
    )


def _describe(frames: FrameSpec) -> str:
    if isinstance(frames, slice | range):
        return f"{frames.start or 0}:{frames.stop}" + (
            f":{frames.step}" if frames.step not in (None, 1) else ""
        )
    return ",".join(str(int(f)) for f in frames)  # type: ignore[union-attr]


def _frame_axis(axes: str, frame_axis: str, where: str) -> int:
    fa = axes_check_and_normalize(frame_axis)
    axes = axes_check_and_normalize(axes)
    if len(fa) != 1 or fa not in axes:
        raise AxesError(
            f"{where}: frame axis {frame_axis!r} is not one of the axes {axes}; pass "
            "frame_axis= naming the frame axis (e.g. 'T')"
        )
    return axes.index(fa)


def accumulate_frames(
    source_frames: FrameSpec,
    target_frames: FrameSpec,
    frame_axis: str = "T",
    dtype: DTypeLike = "uint32",
    check_overflow: bool = True,
) -> Transform:
    """FLAME's frame accumulation as a transform: ``x = sum(source frames)``, ``y = sum(target
    frames)``, lazily, in accumulator ``dtype``; ``frame_axis`` is dropped from the axes.

    Each input pair's ``x`` is the raw stack; the target frames are summed from ``y`` when it
    is given (the same stack, or another one of the same shape), otherwise from ``x``.  A mask
    with the frame axis is reduced to pixels valid in every frame.

    Parameters
    ----------
    source_frames, target_frames : int, slice, range or sequence of int
        ``n`` means the first ``n`` frames (FLAME: ``5`` and ``40``); ranges allow disjoint
        frames, e.g. ``range(0, 5)`` and ``range(5, 45)``.
    frame_axis : str
        The frame axis letter.
    dtype : dtype
        Accumulator and output dtype (default ``uint32``, enough for 65 537 ``uint16`` frames).
    check_overflow : bool
        Refuse a ``dtype`` that could overflow (see :func:`check_accumulator`).
    """
    fa = axes_check_and_normalize(frame_axis)
    np.dtype(dtype)  # validate early

    def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
        for i, item in enumerate(inputs):
            x, y, axes, mask = item
            src, tgt = item_sources(item, i)
            if y is None:
                tgt = src
            where = f"accumulate_frames, {src}"
            axis = _frame_axis(axes, fa, where)
            stack = x if y is None else y
            if tuple(stack.shape) != tuple(x.shape):
                raise InputError(
                    f"{where}: target stack shape {stack.shape} ({tgt}) differs from source "
                    f"{x.shape}; give the same stack (or y=None)"
                )
            xs = sum_frames(x, source_frames, axis, dtype, check_overflow, f"{where} (source)")
            ys = sum_frames(
                stack,
                target_frames,
                axis,
                dtype,
                check_overflow,
                f"accumulate_frames, {tgt} (target)",
            )
            m = None if mask is None else da.all(da.asarray(mask), axis=axis)
            yield xs, ys, axes_check_and_normalize(axes).replace(fa, ""), m

    name = f"Accumulate frames along {fa} ({source_frames!r} -> {target_frames!r})"
    return Transform(name, mark_rng_free(_gen), 1)
