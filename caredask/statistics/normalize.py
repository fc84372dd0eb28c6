"""csbdeep's patch normalisation: random percentiles per patch, taken over the whole image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "FixedRangeNormalization",
    "PercentileNormalization",
    "SamplePercentiles",
    "normalize_mi_ma",
    "norm_percentiles",
    "sample_percentiles",
]

PercentilePair = tuple[float, float]


def _valid_pair(p: Any) -> bool:
    return (
        isinstance(p, tuple | list | np.ndarray)
        and len(p) == 2
        and all(np.isscalar(v) for v in p)
        and 0 <= p[0] < p[1] <= 100
    )


def _check_pair(p: Any, what: str) -> None:
    if not _valid_pair(p):
        raise InputError(f"{what}={p!r} must be a pair (low, high) with 0 <= low < high <= 100")


@dataclass(frozen=True)
class SamplePercentiles:
    """Draws ``(uniform(*pmin), uniform(*pmax))``; from ``rng`` or numpy's global state."""

    pmin: PercentilePair = (1, 3)
    pmax: PercentilePair = (99.5, 99.9)

    def __call__(self, rng: np.random.RandomState | None = None) -> PercentilePair:
        r = np.random.mtrand._rand if rng is None else rng
        return (r.uniform(*self.pmin), r.uniform(*self.pmax))


def sample_percentiles(
    pmin: PercentilePair = (1, 3), pmax: PercentilePair = (99.5, 99.9)
) -> SamplePercentiles:
    """A sampler of one random ``(pmin, pmax)`` pair per patch, as csbdeep's.

    Parameters
    ----------
    pmin, pmax : tuple of float
        Ranges ``(low, high)`` the low and high percentiles are drawn from uniformly.
    """
    _check_pair(pmin, "pmin")
    _check_pair(pmax, "pmax")
    if not pmin[1] < pmax[0]:
        raise InputError(f"pmin={pmin!r} must lie below pmax={pmax!r}")
    return SamplePercentiles(tuple(pmin), tuple(pmax))  # type: ignore[arg-type]


def normalize_mi_ma(
    x: np.ndarray,
    mi: Any,
    ma: Any,
    clip: bool = False,
    eps: float = 1e-20,
    dtype: type[np.floating[Any]] | None = np.float32,
) -> np.ndarray:
    """``(x - mi) / (ma - mi + eps)``, all in ``dtype`` (float32), as csbdeep computes it."""
    if dtype is not None:
        x = x.astype(dtype, copy=False)
        mi = np.asarray(mi).astype(dtype, copy=False)
        ma = np.asarray(ma).astype(dtype, copy=False)
        eps = dtype(eps)  # type: ignore[assignment]
    out = (x - mi) / (ma - mi + eps)
    return np.clip(out, 0, 1) if clip else out


@dataclass(frozen=True)
class PercentileNormalization:
    """csbdeep's ``norm_percentiles`` closure as an inspectable object.

    Called as ``norm(patches_x, patches_y, x, y, mask, channel)`` it is the in-memory numpy
    twin; the lazy pipeline reads ``percentiles`` and ``relu_last`` and computes the same
    percentiles exactly from blockwise order statistics.
    """

    percentiles: Callable[..., PercentilePair] | PercentilePair
    relu_last: bool = False

    def draw(self, k: int, rng: np.random.RandomState | None = None) -> np.ndarray:
        """The ``(k, 2)`` percentile pairs for ``k`` patches, drawn in csbdeep's order."""
        p = self.percentiles
        if not callable(p):
            return np.array([p] * k, dtype=float).reshape(k, 2)
        if isinstance(p, SamplePercentiles):
            return np.array([p(rng) for _ in range(k)], dtype=float).reshape(k, 2)
        return np.array([p() for _ in range(k)], dtype=float).reshape(k, 2)

    def __call__(
        self,
        patches_x: np.ndarray,
        patches_y: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray | None,
        channel: int | None,
        rng: np.random.RandomState | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        pairs = self.draw(len(patches_x), rng)
        pmins, pmaxs = tuple(pairs[:, 0]), tuple(pairs[:, 1])
        axes = None if channel is None else tuple(d for d in range(x.ndim) if d != channel)

        def perc(a: np.ndarray, q: Any) -> np.ndarray:
            return np.percentile(a, q, axis=axes, keepdims=True)

        xn = normalize_mi_ma(patches_x, perc(x, pmins), perc(x, pmaxs))
        ymins = np.zeros_like(pmins) if self.relu_last else pmins
        yn = normalize_mi_ma(patches_y, perc(y, ymins), perc(y, pmaxs))
        return xn, yn


def norm_percentiles(
    percentiles: Callable[..., PercentilePair] | PercentilePair | None = None,
    relu_last: bool = False,
) -> PercentileNormalization:
    """csbdeep's percentile normalisation of patches.

    Parameters
    ----------
    percentiles : callable or (float, float), optional
        A fixed ``(pmin, pmax)`` or a sampler called once per patch (default:
        :func:`sample_percentiles`).  A callable is called once here to validate it, as csbdeep
        does (with the default sampler that draws two numbers from numpy's global state).
    relu_last : bool
        Use the target's 0th percentile (its minimum) as its low percentile.
    """
    if percentiles is None:
        percentiles = sample_percentiles()
    if callable(percentiles):
        _check_pair(percentiles(), "percentiles()")
    else:
        _check_pair(percentiles, "percentiles")
    return PercentileNormalization(percentiles, bool(relu_last))


@dataclass(frozen=True)
class FixedRangeNormalization:
    """Normalise every image with the same ranges (e.g. dataset-level percentiles).

    ``x_lo``/``x_hi`` (source) and ``y_lo``/``y_hi`` (target) are scalars or one value per
    channel; patches become ``(p - lo) / (hi - lo + 1e-20)`` in float32, like
    :func:`normalize_mi_ma`.  No per-image statistics are computed.
    """

    x_lo: Any
    x_hi: Any
    y_lo: Any
    y_hi: Any

    def ranges(self, ndim: int, channel: int | None) -> tuple[np.ndarray, ...]:
        """``(x_lo, x_hi, y_lo, y_hi)`` shaped to broadcast against ``(k, *patch)``."""
        shape = [1] * (ndim + 1)
        out = []
        for v in (self.x_lo, self.x_hi, self.y_lo, self.y_hi):
            a = np.asarray(v, dtype=np.float64).ravel()
            if a.size > 1:
                if channel is None:
                    raise InputError(
                        f"{a.size} per-channel ranges given but the images have no C axis; "
                        "give one value each"
                    )
                shape_c = list(shape)
                shape_c[1 + channel] = a.size
                out.append(a.reshape(shape_c))
            else:
                out.append(a.reshape(shape))
        return tuple(out)

    def __call__(
        self,
        patches_x: np.ndarray,
        patches_y: np.ndarray,
        x: Any,
        y: Any,
        mask: Any,
        channel: int | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        xl, xh, yl, yh = self.ranges(patches_x.ndim - 1, channel)
        return normalize_mi_ma(patches_x, xl, xh), normalize_mi_ma(patches_y, yl, yh)
