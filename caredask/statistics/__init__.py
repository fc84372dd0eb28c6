"""Statistics: exact percentiles and order statistics of dask arrays, csbdeep's normalisation.

=========================  ===============================================================
module                     what lives there
=========================  ===============================================================
:mod:`.percentile`         :func:`percentile` (``np.percentile``'s twin), order statistics
:mod:`._radix`             the radix-select driver: one ``dask.compute`` per pass
:mod:`._kernels`           per-block numpy kernels: key histograms, candidate gathering
:mod:`._keys`              order-preserving unsigned keys of every supported dtype
:mod:`.normalize`          csbdeep's percentile normalisation, fixed-range normalisation
=========================  ===============================================================
"""

from __future__ import annotations

from .normalize import (
    FixedRangeNormalization,
    PercentileNormalization,
    SamplePercentiles,
    norm_percentiles,
    normalize_mi_ma,
    sample_percentiles,
)
from .percentile import (
    order_statistics,
    percentile,
    percentile_from_order_statistics,
    percentile_ranks,
)

__all__ = [
    "FixedRangeNormalization",
    "PercentileNormalization",
    "SamplePercentiles",
    "norm_percentiles",
    "normalize_mi_ma",
    "order_statistics",
    "percentile",
    "percentile_from_order_statistics",
    "percentile_ranks",
    "sample_percentiles",
]
