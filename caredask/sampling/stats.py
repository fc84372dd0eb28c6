"""Per-image statistics the csbdeep pipeline needs, from one pass of exact order statistics.

For every image of a batch: the background-filter threshold (``0.4 * p99.9`` of the float32
target) and the normalisation percentiles (one random ``(pmin, pmax)`` per patch, per channel).
All ranks are known up front, so one :func:`~caredask.statistics.percentile.order_statistics`
call serves the whole batch (a single read of every image for 8/16-bit data).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

from ..errors import NonFiniteError
from ..masks.filters import BackgroundFilter
from ..masks.skip import block_maxima
from ..statistics._radix import _order_statistics  # the driver, with NaN counts
from ..statistics.normalize import PercentileNormalization
from ..statistics.percentile import percentile_from_order_statistics, percentile_ranks

__all__ = [
    "NONFINITE_POLICIES",
    "ImageStats",
    "StatRequest",
    "batch_statistics",
    "check_finite",
    "nonfinite_count",
    "read_whole",
]


@dataclass
class ImageStats:
    """What normalisation and filtering of one image need."""

    threshold: Any = None
    x_lo: np.ndarray | None = None
    x_hi: np.ndarray | None = None
    y_lo: np.ndarray | None = None
    y_hi: np.ndarray | None = None
    block_max: np.ndarray | None = None  # per-block maxima of the target (filter only)
    mask_reread: float | None = None  # fraction of target blocks the mask pass read
    nonfinite: dict[str, int] = field(default_factory=dict)  # "source"/"target" -> count


@dataclass
class StatRequest:
    """Percentiles ``q`` of one array (a whole image or one channel of it)."""

    array: da.Array
    qs: list[Any] = field(default_factory=list)  # each: (tag, q, weak, cast_float32)


def _channel_views(a: da.Array, channel: int | None) -> list[da.Array]:
    if channel is None:
        return [a]
    return [da.take(a, c, axis=channel) for c in range(a.shape[channel])]


def _stack_channels(vals: list[np.ndarray], ndim: int, channel: int | None) -> np.ndarray:
    """Shape ``(k, 1.., C, ..1)`` as ``np.percentile(..., axis=non-channel, keepdims=True)``."""
    k = len(vals[0])
    shape = [k] + [1] * ndim
    if channel is not None:
        shape[1 + channel] = len(vals)
    return np.stack(vals, axis=-1).reshape(shape)


def _requests(
    x: da.Array,
    y: da.Array,
    channel: int | None,
    pairs: np.ndarray | None,
    filt: Any,
    norm: Any,
) -> list[StatRequest]:
    y_whole = StatRequest(y)
    reqs = [y_whole]
    if isinstance(filt, BackgroundFilter):
        y_whole.qs.append(("thr", filt.percentile, True, True))
    if isinstance(norm, PercentileNormalization) and pairs is not None:
        pmins, pmaxs = pairs[:, 0], pairs[:, 1]
        ymins = np.zeros_like(pmins) if norm.relu_last else pmins
        for arr, tags in (
            (x, (("x_lo", pmins), ("x_hi", pmaxs))),
            (y, (("y_lo", ymins), ("y_hi", pmaxs))),
        ):
            views = _channel_views(arr, channel)
            for c, v in enumerate(views):
                if channel is None and arr is y:
                    req = y_whole
                else:
                    req = StatRequest(v)
                    reqs.append(req)
                for tag, q in tags:
                    req.qs.append(((tag, c), q, False, False))
    return [r for r in reqs if r.qs]


def _resolve(req: StatRequest, values: np.ndarray, out: dict[Any, Any]) -> None:
    n = req.array.size
    # NaN sorts last: the largest value tells whether numpy's result is NaN.
    has_nan = req.array.dtype.kind == "f" and bool(np.isnan(values[-1]))
    pos = 0
    for tag, q, weak, cast in req.qs:
        m = np.size(percentile_ranks(n, q)[0])
        lo_v, hi_v = values[pos : pos + m], values[pos + m : pos + 2 * m]
        pos += 2 * m
        dtype = np.dtype(np.float32) if cast else req.array.dtype
        if cast:
            lo_v, hi_v = lo_v.astype(np.float32), hi_v.astype(np.float32)
        qq = q if weak else np.asarray(q, dtype=float)
        res = percentile_from_order_statistics(
            lo_v, hi_v, n, qq, dtype=dtype, weak_q=weak, has_nan=has_nan
        )
        out[tag] = np.asarray(res).reshape(())[()] if np.ndim(q) == 0 else res


def nonfinite_count(a: da.Array) -> da.Array:
    """Number of NaN and infinite values of ``a`` (a scalar dask array)."""
    return da.count_nonzero(~da.isfinite(a))


def read_whole(
    image: tuple[da.Array, da.Array, int | None, Any], filt: Any, norm: Any
) -> dict[str, da.Array]:
    """The source and target that the statistics pass reads whole (see :func:`_requests`)."""
    x, y, _, pairs = image
    percentiles = isinstance(norm, PercentileNormalization) and pairs is not None
    out = {"source": x} if percentiles else {}
    if percentiles or isinstance(filt, BackgroundFilter):
        out["target"] = y
    return out


def batch_statistics(
    images: Sequence[tuple[da.Array, da.Array, int | None, np.ndarray | None]],
    filt: Any,
    norm: Any,
) -> list[ImageStats]:
    """Exact filter thresholds and normalisation percentiles for a batch of image pairs.

    Parameters
    ----------
    images : sequence of (x, y, channel, pairs)
        Source and target (dask), channel index, and the ``(k, 2)`` percentile pairs drawn for
        the image's patches (``None`` without normalisation).
    filt, norm
        The patch filter and normalisation (recognised when caredask's own objects).
    """
    per_image = [_requests(x, y, ch, pairs, filt, norm) for x, y, ch, pairs in images]
    flat = [r for reqs in per_image for r in reqs]
    ranks = []
    for r in flat:
        rk = []
        for _, q, _, _ in r.qs:
            lo, hi = percentile_ranks(r.array.size, q)
            rk += [np.atleast_1d(lo), np.atleast_1d(hi)]
        ranks.append(np.concatenate([*rk, [r.array.size - 1]]))
    # Per-block target maxima (for the filter) and non-finite counts of the float arrays the
    # pass reads share the first pass's reads.
    extra: list[Any] = []
    slots: list[dict[str, int]] = []
    for image in images:
        slot: dict[str, int] = {}
        if isinstance(filt, BackgroundFilter):
            slot["max"] = len(extra)
            extra.append(block_maxima(image[1]))
        for role, arr in read_whole(image, filt, norm).items():
            if arr.dtype.kind == "f":
                slot[role] = len(extra)
                extra.append(nonfinite_count(arr))
        slots.append(slot)
    values, _, done = _order_statistics([r.array for r in flat], ranks, extra=extra)
    results: list[ImageStats] = []
    i = 0
    for (x, y, ch, _), reqs, slot in zip(images, per_image, slots, strict=True):
        out: dict[Any, Any] = {}
        for r in reqs:
            _resolve(r, values[i], out)
            i += 1
        st = ImageStats(block_max=done[slot["max"]] if "max" in slot else None)
        st.nonfinite = {role: int(done[j]) for role, j in slot.items() if role != "max"}
        if "thr" in out:
            st.threshold = filt.threshold_from(out["thr"])
        for tag, arr in (("x_lo", x), ("x_hi", x), ("y_lo", y), ("y_hi", y)):
            chans = sorted(k for k in out if isinstance(k, tuple) and k[0] == tag)
            if chans:
                setattr(st, tag, _stack_channels([out[c] for c in chans], arr.ndim, ch))
        results.append(st)
    return results


NONFINITE_POLICIES = ("raise", "warn", "keep")


def check_finite(name: str, target: str, stats: ImageStats, policy: str) -> None:
    """Refuse (or warn about) NaN/infinite values the statistics pass found in a pair.

    ``policy``: ``"raise"`` (caredask's default), ``"warn"`` (the csbdeep drop-in: csbdeep
    silently makes NaN patches) or ``"keep"``.
    """
    for role, n in sorted(stats.nonfinite.items()):
        if n == 0 or policy == "keep":
            continue
        where = target if role == "target" else name
        what = f"{where}: the {role} image holds {n} non-finite values (NaN or infinity)"
        if policy == "raise":
            raise NonFiniteError(
                f"{what}, which would make NaN training patches; replace them (e.g. with "
                "numpy.nan_to_num) or pass nonfinite='keep' (command line: --allow-nonfinite) "
                "to keep csbdeep's behaviour"
            )
        warnings.warn(f"{what}; patches taken from it may be NaN, as in csbdeep", stacklevel=4)
