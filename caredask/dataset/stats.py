"""Exact dataset-level statistics per channel, computed blockwise over many images.

For each stream (source, target) and each channel, the voxels of all given images are pooled
(each image's channel view flattened blockwise and concatenated: no copy, no rechunk) and

* percentiles (numpy's ``linear`` method), ``min`` and ``max`` come from one
  :func:`~caredask.statistics.percentile.order_statistics` call over every pooled array: exactly
  ``np.percentile(np.concatenate([...]), q)``, ``.min()`` and ``.max()`` of the pooled voxels;
* ``mean`` and ``std`` (population, ``ddof=0``) come from one ``map_blocks`` pass of per-block
  sums.  For integer data of at most 32 bits the sums are exact integers (the square split into
  16-bit halves so no block sum overflows int64) combined with Python integers, so mean and
  variance are correctly rounded and independent of chunking.  For floats and 64-bit integers,
  per-block float64 means and centred sums of squares are merged with Chan et al.'s formula
  (float64 rounding, within ``rtol=1e-12`` of numpy in practice).

For 8/16-bit data the whole computation reads every chunk twice (moments, one histogram pass).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..errors import AxesError, InputError
from ..statistics.normalize import FixedRangeNormalization
from ..statistics.percentile import (
    order_statistics,
    percentile_from_order_statistics,
    percentile_ranks,
)

__all__ = [
    "DEFAULT_PERCENTILES",
    "StreamStatistics",
    "block_moments",
    "combine_moments",
    "dataset_normalization",
    "dataset_statistics",
    "moments_graph",
]

DEFAULT_PERCENTILES = (0.1, 1.0, 2.0, 3.0, 50.0, 97.0, 99.0, 99.5, 99.8, 99.9)
_MAX_BLOCK = 2**31 - 1  # elements per block for the exact integer sums


# --------------------------------------------------------------------------- kernels


def _exact_int(dtype: np.dtype) -> bool:
    return dtype.kind in "biu" and dtype.itemsize <= 4


def block_moments(block: np.ndarray) -> np.ndarray:
    """Per-block sums of one (flat) block, as a 1-D row.

    Integers of at most 32 bits (and bool): int64 ``[n, s1, shh, shl, sll]`` with
    ``x = h * 2**16 + l`` (``l`` in ``[0, 2**16)``), so ``sum(x**2) = shh * 2**32 +
    2 * shl * 2**16 + sll`` exactly.  Otherwise float64 ``[n, mean, m2]`` (``m2`` the sum of
    squared deviations from the block mean).
    """
    flat = np.asarray(block).reshape(-1)
    if _exact_int(flat.dtype):
        x = flat.astype(np.int64)
        h, lo = x >> 16, x & 0xFFFF
        return np.array(
            [x.size, x.sum(), (h * h).sum(), (h * lo).sum(), (lo * lo).sum()], dtype=np.int64
        )
    f = flat.astype(np.float64)
    if f.size == 0:
        return np.zeros(3, dtype=np.float64)
    mean = f.sum() / f.size
    return np.array([f.size, mean, ((f - mean) ** 2).sum()], dtype=np.float64)


def combine_moments(rows: np.ndarray) -> tuple[int, float, float]:
    """``(n, mean, std)`` from the rows of :func:`block_moments` (``std`` with ``ddof=0``)."""
    rows = np.asarray(rows)
    if rows.dtype.kind == "i":
        n = sum(int(v) for v in rows[:, 0])
        s1 = sum(int(v) for v in rows[:, 1])
        s2 = sum((int(a) << 32) + (int(b) << 17) + int(c) for a, b, c in rows[:, 2:5])
        if n == 0:
            raise InputError("cannot take statistics of zero voxels; give non-empty images")
        return n, s1 / n, math.sqrt((n * s2 - s1 * s1) / (n * n))
    n_tot, mean, m2 = 0, 0.0, 0.0
    for n_b, mean_b, m2_b in rows:
        if n_b == 0:
            continue
        n_new = n_tot + n_b
        delta = mean_b - mean
        mean += delta * n_b / n_new
        m2 += m2_b + delta * delta * n_tot * n_b / n_new
        n_tot = int(n_new)
    if n_tot == 0:
        raise InputError("cannot take statistics of zero voxels; give non-empty images")
    return n_tot, float(mean), math.sqrt(m2 / n_tot)


def moments_graph(flat: da.Array) -> da.Array:
    """Lazy rows of :func:`block_moments`, one per block of a 1-D dask array (flattened)."""
    if flat.ndim != 1:
        raise InputError(f"moments_graph needs a 1-D array; got {flat.ndim} dimensions")
    if max(flat.chunks[0], default=0) > _MAX_BLOCK:
        raise InputError(
            f"a chunk of {max(flat.chunks[0])} elements is too large for exact sums; rechunk "
            f"to at most {_MAX_BLOCK} elements per chunk"
        )
    exact = _exact_int(flat.dtype)
    width = 5 if exact else 3
    return da.map_blocks(
        block_moments,
        flat,
        chunks=((width,) * flat.numblocks[0],),
        dtype=np.int64 if exact else np.float64,
        meta=np.empty((0,), np.int64 if exact else np.float64),
    )


# --------------------------------------------------------------------------- pooling


def _flat(a: da.Array) -> da.Array:
    a = da.squeeze(a)
    if a.ndim == 0:
        return a.reshape(1)
    return a if a.ndim == 1 else da.reshape_blockwise(a, (-1,))


def _channel_views(a: Any, axes: str) -> list[da.Array]:
    x = a if isinstance(a, da.Array) else da.from_array(np.asarray(a))
    if len(axes) != x.ndim:
        raise AxesError(f"axes {axes!r} do not fit an image of shape {x.shape}; one per axis")
    if "C" not in axes:
        return [x]
    c = axes.index("C")
    return [x[(slice(None),) * c + (i,)] for i in range(x.shape[c])]


def _pooled(images: Sequence[Any], axes: Sequence[str]) -> list[da.Array]:
    """One flat pooled dask array per channel (all images must have the same channel count)."""
    views = [_channel_views(a, ax) for a, ax in zip(images, axes, strict=True)]
    counts = {len(v) for v in views}
    if len(counts) != 1:
        raise InputError(
            f"images have different channel counts {sorted(counts)}; dataset statistics are "
            "per channel: use images with the same channels (or split the channels first)"
        )
    n_ch = counts.pop()
    return [da.concatenate([_flat(v[c]) for v in views]) for c in range(n_ch)]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StreamStatistics:
    """Per-channel statistics of the pooled voxels of one stream (source or target).

    Attributes
    ----------
    q : tuple of float
        The percentiles asked for.
    percentiles : numpy.ndarray
        Shape ``(len(q), channels)``: ``np.percentile(pooled_c, q)`` per channel.
    mean, std : numpy.ndarray
        float64, one per channel (``std`` with ``ddof=0``).
    min, max : numpy.ndarray
        One per channel, in the data's dtype.
    n_voxels : int
        Voxels per channel.
    dtype : str
        dtype of the pooled data.
    """

    q: tuple[float, ...]
    percentiles: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    n_voxels: int
    dtype: str

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.mean.size)

    def value(self, q: float) -> np.ndarray:
        """The per-channel values of percentile ``q`` (which must be one of :attr:`q`)."""
        matches = [i for i, v in enumerate(self.q) if float(v) == float(q)]
        if not matches:
            raise InputError(
                f"percentile {q} was not computed (have {list(self.q)}); add it to the "
                "percentiles of the dataset statistics"
            )
        return np.asarray(self.percentiles[matches[0]])

    def to_json(self) -> dict[str, Any]:
        """JSON types (percentiles as ``[[channel values] per q]``)."""
        return {
            "channels": self.channels,
            "n_voxels": self.n_voxels,
            "dtype": self.dtype,
            "q": [float(v) for v in self.q],
            "percentiles": self.percentiles.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "min": self.min.tolist(),
            "max": self.max.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StreamStatistics:
        """Inverse of :meth:`to_json` (values are bit-exact: JSON floats round-trip)."""
        dt = np.dtype(d["dtype"])
        return cls(
            tuple(float(v) for v in d["q"]),
            np.asarray(d["percentiles"], dtype=np.float64),
            np.asarray(d["mean"], dtype=np.float64),
            np.asarray(d["std"], dtype=np.float64),
            np.asarray(d["min"], dtype=dt),
            np.asarray(d["max"], dtype=dt),
            int(d["n_voxels"]),
            d["dtype"],
        )


def _percentile_values(
    vals: np.ndarray, n: int, q: np.ndarray, dtype: np.dtype
) -> tuple[np.ndarray, Any, Any]:
    """Percentiles, min and max from the order statistics at ``[lo..., hi..., 0, n-1]``."""
    m = q.size
    lo, hi, mn, mx = vals[:m], vals[m : 2 * m], vals[2 * m], vals[2 * m + 1]
    nan = dtype.kind == "f" and bool(np.isnan(mx))
    res = percentile_from_order_statistics(lo, hi, n, q, dtype=dtype, weak_q=False, has_nan=nan)
    return np.asarray(res, dtype=np.float64), mn, mx


def dataset_statistics(
    streams: Sequence[Sequence[Any]],
    axes: Sequence[str] | Sequence[Sequence[str]],
    q: Sequence[float] = DEFAULT_PERCENTILES,
) -> list[StreamStatistics]:
    """Exact per-channel statistics of the pooled voxels of each stream, blockwise.

    Parameters
    ----------
    streams : sequence of sequences of arrays
        E.g. ``[train_sources, train_targets]``; each a list of dask or numpy images.
    axes : str, or one per image of each stream
        Axes of the images (a single string applies to every image).
    q : sequence of float
        Percentiles in ``[0, 100]``.

    Returns
    -------
    list of StreamStatistics
        One per stream.  Percentiles equal ``np.percentile(np.concatenate(channel voxels of all
        images), q)`` exactly (computed in the pooled array's dtype, as numpy does).

    Raises
    ------
    InputError
        An empty stream, different channel counts, or an unsupported dtype.
    """
    qa = np.asarray([float(v) for v in q], dtype=np.float64)
    pooled_per_stream = _pooled_streams(streams, axes)
    pooled = [p for ps in pooled_per_stream for p in ps]
    ns = [int(p.shape[0]) for p in pooled]
    ranks = []
    for n in ns:
        lo, hi = percentile_ranks(n, qa)
        ranks.append(np.concatenate([lo, hi, [0, n - 1]]))
    moments = dask.compute(*[moments_graph(p) for p in pooled])
    values = order_statistics(pooled, ranks)
    out, i = [], 0
    for ps in pooled_per_stream:
        per_c = []
        for p in ps:
            dt = np.dtype(p.dtype)
            perc, mn, mx = _percentile_values(values[i], ns[i], qa, dt)
            n, mean, std = combine_moments(
                np.asarray(moments[i]).reshape(-1, 5 if _exact_int(dt) else 3)
            )
            per_c.append((perc, mean, std, mn, mx, n, dt))
            i += 1
        out.append(_stream_statistics(qa, per_c))
    return out


def _pooled_streams(
    streams: Sequence[Sequence[Any]], axes: Sequence[str] | Sequence[Sequence[str]]
) -> list[list[Any]]:
    """Per stream, the pooled voxels of each channel (see :func:`_pooled`)."""
    pooled_per_stream = []
    for s, images in enumerate(streams):
        if len(images) == 0:
            raise InputError(f"stream {s} has no images; statistics need at least one")
        ax = [axes] * len(images) if isinstance(axes, str) else list(axes[s])
        pooled_per_stream.append(_pooled(images, ax))
    return pooled_per_stream


def _stream_statistics(qa: np.ndarray, per_c: list[tuple[Any, ...]]) -> StreamStatistics:
    """One stream's statistics from ``(perc, mean, std, min, max, n, dtype)`` per channel."""
    dt = per_c[0][6]
    return StreamStatistics(
        tuple(float(v) for v in qa),
        np.stack([c[0] for c in per_c], axis=-1),
        np.array([c[1] for c in per_c], dtype=np.float64),
        np.array([c[2] for c in per_c], dtype=np.float64),
        np.array([c[3] for c in per_c], dtype=dt),
        np.array([c[4] for c in per_c], dtype=dt),
        per_c[0][5],
        str(dt),
    )


def dataset_normalization(
    source: StreamStatistics, target: StreamStatistics, pmin: float = 1.0, pmax: float = 99.8
) -> FixedRangeNormalization:
    """Normalise every image with the dataset's percentiles (per channel).

    ``source`` patches become ``(x - p_pmin) / (p_pmax - p_pmin + 1e-20)`` with the source
    stream's pooled percentiles, targets likewise with the target's (float32, as csbdeep's
    ``normalize_mi_ma``); no per-image statistics are computed.

    Raises
    ------
    InputError
        ``pmin``/``pmax`` not among the computed percentiles, or ``pmin >= pmax``.
    """
    if not pmin < pmax:
        raise InputError(f"dataset normalisation: pmin={pmin} must be below pmax={pmax}")
    return FixedRangeNormalization(
        source.value(pmin), source.value(pmax), target.value(pmin), target.value(pmax)
    )
