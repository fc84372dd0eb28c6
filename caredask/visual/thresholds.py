"""Threshold previews: the region csbdeep's background filter leaves eligible, per threshold.

No patch is sampled: each target's filter percentile is computed exactly (blockwise), and the
eligible centres for every threshold are projected and tinted side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np

from ..errors import InputError
from ..loaders import LazyImage, open_images
from ..masks.filters import BackgroundFilter
from ..rawdata import open_masks
from ..statistics.percentile import percentile
from .render import (
    Panel,
    canvas,
    draw_text,
    eligible_centres,
    fmt_value,
    panel_image,
    paste,
    pool_factor,
    project,
    save_png,
    scale_for,
    yx_shape,
)

__all__ = ["preview_thresholds"]

_HEAD, _GAP = 14, 6


def preview_thresholds(
    target: Any,
    output: str | os.PathLike[str],
    thresholds: Sequence[float],
    patch_size: Sequence[int],
    *,
    percentile_: float = 99.9,
    axes: str | None = None,
    max_images: int = 4,
    max_side: int = 256,
    overwrite: bool = False,
    mask_options: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Path, list[Panel]]:
    """Picture of the region csbdeep's background filter leaves eligible, per threshold.

    Computes the filter's percentile of each target (exactly, blockwise) and the eligible
    centres for each threshold; no patch is sampled.  See :func:`preview` for the arguments.
    """
    if not thresholds:
        raise InputError("give at least one filter threshold, e.g. 0.2 0.4 0.6")
    filters = [BackgroundFilter(float(t), float(percentile_)) for t in thresholds]
    imgs = open_images(target, axes, **options)[:max_images]
    masks = open_masks(imgs, imgs, axes, **mask_options, **options) if mask_options else None
    lazy: list[Any] = []
    caps: list[Any] = []
    for i, im in enumerate(imgs):
        p = percentile(im.data.astype(np.float32), float(percentile_))
        f = pool_factor(yx_shape(im), max_side)
        lazy.append(project(im.data, im.axes, f))
        for flt in filters:
            thr = flt.threshold_from(p)
            e = eligible_centres(im.data, patch_size, thr, None if masks is None else masks[i])
            lazy.append(project(e, im.axes, f))
            caps.append((flt.threshold, p, thr, e.mean()))
        lazy.append(f)
    arrays = dask.compute(*[a for a in lazy if not isinstance(a, int)], *[c[3] for c in caps])
    return _draw_thresholds(imgs, lazy, arrays, caps, percentile_, output, overwrite)


def _draw_thresholds(
    imgs: list[LazyImage],
    lazy: list[Any],
    arrays: Sequence[Any],
    caps: list[Any],
    pct: float,
    output: Any,
    overwrite: bool,
) -> tuple[Path, list[Panel]]:
    n_t = len(caps) // len(imgs)
    fracs = arrays[len(arrays) - len(caps) :]
    per = 1 + n_t
    pics, panels, y, width = [], [], 0, 0
    for i, im in enumerate(imgs):
        proj = arrays[i * per]
        f = lazy[i * (per + 1) + per]
        scale = scale_for(proj.shape, 200)
        row = [panel_image(proj, arrays[i * per + 1 + t], scale) for t in range(n_t)]
        pics.append((y, row))
        width = max(width, n_t * (row[0].shape[1] + _GAP))
        for t in range(n_t):
            ox = t * (row[0].shape[1] + _GAP)
            size = (row[0].shape[1], row[0].shape[0])
            panels.append(Panel(im.name, (ox, y + 2 * _HEAD), size, scale, f))
        y += 2 * _HEAD + row[0].shape[0] + _GAP
    img = canvas(max(width, 300), y)
    for i, (y0, row) in enumerate(pics):
        p_i = caps[i * n_t][1]
        draw_text(img, (2, y0 + 1), f"{imgs[i].name}: p{pct:g} = {fmt_value(p_i)}")
        for t, pic in enumerate(row):
            thr_frac, _, thr, _ = caps[i * n_t + t]
            ox = t * (pic.shape[1] + _GAP)
            label = f"{thr_frac:g} -> {fmt_value(thr)}: {fracs[i * n_t + t]:.0%} eligible"
            draw_text(img, (ox + 2, y0 + _HEAD + 1), label)
            paste(img, pic, (ox, y0 + 2 * _HEAD))
    return save_png(img, output, overwrite), panels
