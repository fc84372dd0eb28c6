"""Patch filters with csbdeep's signature: ``filter(datas, patch_size) -> bool mask``.

:func:`no_background_patches` returns a :class:`BackgroundFilter`.  Called directly it is the
numpy twin of csbdeep's filter (whole image in memory); the lazy pipeline recognises it and
computes the same mask blockwise (:mod:`caredask.masks.background`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from .background import filter_size

__all__ = ["BackgroundFilter", "no_background_patches"]


@dataclass(frozen=True)
class BackgroundFilter:
    """Eligible centres: the target's maximum over half a patch exceeds ``threshold * p``.

    Attributes
    ----------
    threshold : float
        Fraction of the robust maximum, in ``[0, 1]``.
    percentile : float
        Percentile of the target taken as its robust maximum, in ``[0, 100]``.
    """

    threshold: float = 0.4
    percentile: float = 99.9

    def __call__(
        self,
        datas: Sequence[np.ndarray],
        patch_size: Sequence[int],
        dtype: type[np.generic] | None = np.float32,
    ) -> np.ndarray:
        """Whole-image mask of ``datas[0]`` (the target), exactly as csbdeep computes it."""
        image = np.asarray(datas[0])
        if dtype is not None:
            image = image.astype(dtype)
        filtered = ndi.maximum_filter(image, filter_size(patch_size), mode="constant")
        return np.asarray(filtered > self.threshold * np.percentile(image, self.percentile))

    def threshold_from(self, p: Any) -> Any:
        """The threshold csbdeep compares with, from the float32 percentile ``p``.

        ``threshold * p`` with numpy's promotion rules: float32 for a Python float threshold.
        """
        return np.asarray(self.threshold * np.float32(p))[()]


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def no_background_patches(threshold: float = 0.4, percentile: float = 99.9) -> BackgroundFilter:
    """csbdeep's default patch filter: skip patches of pure background.

    Parameters
    ----------
    threshold : float
        In ``[0, 1]``: a centre is eligible when the target's maximum over the central half of
        its patch exceeds ``threshold`` times the target's ``percentile``.
    percentile : float
        In ``[0, 100]``: the robust maximum of the target.

    Returns
    -------
    BackgroundFilter
        Callable as ``filter((y, x), patch_size)``; computed blockwise by the pipeline.
    """
    if not (_is_real(percentile) and 0 <= percentile <= 100):
        raise InputError(f"no_background_patches: percentile={percentile!r} must be in [0, 100]")
    if not (_is_real(threshold) and 0 <= threshold <= 1):
        raise InputError(f"no_background_patches: threshold={threshold!r} must be in [0, 1]")
    return BackgroundFilter(threshold, percentile)
