"""Blockwise pictures of lazy images: projections, eligible regions, patch boxes, PNG files.

Nothing here holds a whole image in memory: a projection is a dask ``max`` over the non-``YX``
axes followed by a blockwise max-pooling (``da.coarsen``) down to at most ``max_side`` pixels;
the eligible region of the background filter is built with the same blockwise stencils the
sampler uses (:mod:`caredask.masks.background`) and reduced the same way (``max`` of booleans
is "any").  Only the small 2D results are computed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize

from ..errors import AxesError, InputError
from ..loaders.base import LazyImage
from ..masks.background import border_slices, dilate_above_mask, erode_pixel_mask

__all__ = [
    "BOX",
    "Panel",
    "canvas",
    "draw_text",
    "fmt_value",
    "paste",
    "scale_for",
    "yx_shape",
    "eligible_centres",
    "panel_image",
    "pool_factor",
    "project",
    "project_numpy",
    "save_png",
]

BOX = (255, 0, 0)
"""Colour of patch boxes (never produced by the grey or tinted pixels)."""


def pool_factor(shape_yx: Sequence[int], max_side: int) -> int:
    """Smallest integer factor that brings the larger of ``(Y, X)`` to at most ``max_side``."""
    return max(1, -(-max(int(s) for s in shape_yx) // int(max_side)))


def _yx(axes: str) -> tuple[tuple[int, ...], bool]:
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"a preview needs Y and X axes; the image has axes {axes!r}")
    rest = tuple(i for i, a in enumerate(axes) if a not in "YX")
    return rest, axes.index("Y") > axes.index("X")


def project_numpy(a: np.ndarray, axes: str, factor: int) -> np.ndarray:
    """Numpy twin of :func:`project`: ``(Y, X)`` maximum, max-pooled by ``factor``."""
    rest, swap = _yx(axes)
    p = np.asarray(a).max(axis=rest) if rest else np.asarray(a)
    p = p.T if swap else p
    h, w = (p.shape[0] // factor) * factor, (p.shape[1] // factor) * factor
    p = p[:h, :w]
    return p.reshape(h // factor, factor, w // factor, factor).max(axis=(1, 3))


def project(a: da.Array, axes: str, factor: int) -> da.Array:
    """``(Y, X)`` maximum projection over the other axes, max-pooled by ``factor`` (lazy).

    A partial last block of ``factor`` pixels is dropped (as :func:`project_numpy`).
    """
    rest, swap = _yx(axes)
    p = a.max(axis=rest) if rest else a
    p = p.T if swap else p
    if factor == 1:
        return p
    # coarsen aligns the chunks to multiples of factor itself (one rechunk of a 2D array)
    return da.coarsen(np.max, p, {0: factor, 1: factor}, trim_excess=True)


def _stencil_ready(a: da.Array, depth: Sequence[int]) -> da.Array:
    fixed = tuple(
        ensure_minimum_chunksize(max(d, 1), c) if len(c) > 1 else c
        for d, c in zip(depth, a.chunks, strict=True)
    )
    return a if fixed == a.chunks else a.rechunk(fixed)


def eligible_centres(
    y: da.Array, patch_size: Sequence[int], threshold: Any, mask: da.Array | None = None
) -> da.Array:
    """Pixels that may be patch centres: csbdeep's filter and pixel-mask rules, inside the border.

    ``threshold`` ``None`` means no background filter.  Lazy, same shape as ``y``.
    """
    ps = tuple(int(p) for p in patch_size)
    if len(ps) != y.ndim:
        raise InputError(f"patch size {ps} needs one entry per axis of the image {y.shape}")
    halo = tuple(p // 2 for p in ps)
    if threshold is None:
        m = da.ones(y.shape, dtype=bool, chunks=y.chunks)
    else:
        m = dilate_above_mask(_stencil_ready(y, halo), threshold, ps)
    if mask is not None:
        m = m & erode_pixel_mask(_stencil_ready(mask.rechunk(m.chunks), halo), ps).rechunk(m.chunks)
    border = border_slices(y.shape, ps)
    pads = [(s.start, d - s.stop) for s, d in zip(border, y.shape, strict=True)]
    if any(s.stop <= s.start for s in border):
        return da.zeros(y.shape, dtype=bool, chunks=y.chunks)
    return da.pad(m[border], pads, mode="constant", constant_values=False)


def _to_uint8(p: np.ndarray) -> np.ndarray:
    finite = p[np.isfinite(p)] if p.dtype.kind == "f" else p.ravel()
    if finite.size == 0:
        return np.zeros(p.shape, np.uint8)
    lo, hi = np.percentile(finite, [1, 99.8])
    q = (np.asarray(p, np.float64) - lo) / (hi - lo) if hi > lo else np.zeros(p.shape)
    return (np.clip(np.nan_to_num(q), 0, 1) * 255).round().astype(np.uint8)


@dataclass
class Panel:
    """Where one image's picture sits in the PNG and how image pixels map to it.

    An image pixel ``(r, c)`` (in the projected ``Y``/``X``) lands at PNG pixel
    ``(oy + r * scale // factor, ox + c * scale // factor)``.
    """

    name: str
    origin: tuple[int, int]
    size: tuple[int, int]
    scale: int
    factor: int
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    def box(self, start_yx: Sequence[int], size_yx: Sequence[int]) -> tuple[int, int, int, int]:
        """PNG rectangle ``(x0, y0, x1, y1)`` (inclusive) of a patch, clipped to the panel."""
        (sy, sx), (py, px) = start_yx, size_yx
        s, f = self.scale, self.factor
        ox, oy = self.origin
        w, h = self.size
        x0, y0 = min(sx * s // f, w - 1), min(sy * s // f, h - 1)
        x1, y1 = min((sx + px) * s // f - 1, w - 1), min((sy + py) * s // f - 1, h - 1)
        return ox + x0, oy + y0, ox + max(x0, x1), oy + max(y0, y1)


def panel_image(proj: np.ndarray, eligible: np.ndarray | None, scale: int) -> np.ndarray:
    """RGB uint8 picture of a projection, eligible pixels tinted green, upscaled by ``scale``."""
    g = _to_uint8(proj)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    if eligible is not None:
        e = eligible[: g.shape[0], : g.shape[1]]
        dim = (g[e].astype(np.uint16) * 55 // 100).astype(np.uint8)
        rgb[e] = np.stack([dim, dim + 115, dim], axis=-1)
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def save_png(img: Any, path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Write a Pillow image as PNG; an existing file is replaced only with ``overwrite``.

    Raises
    ------
    InputError
        ``path`` exists and ``overwrite`` is false.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        try:
            with open(target, "xb") as fh:  # exclusive: never clobbers
                img.save(fh, format="PNG")
        except FileExistsError:
            raise InputError(
                f"{target} exists; pass overwrite=True (--overwrite) or choose another name"
            ) from None
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def fmt_value(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def canvas(w: int, h: int) -> Any:
    from PIL import Image

    return Image.new("RGB", (w, h), (255, 255, 255))


def draw_text(img: Any, xy: tuple[int, int], text: str) -> None:
    from PIL import ImageDraw

    ImageDraw.Draw(img).text(xy, text, fill=(0, 0, 0))


def paste(img: Any, rgb: np.ndarray, xy: tuple[int, int]) -> None:
    from PIL import Image

    img.paste(Image.fromarray(rgb), xy)


def scale_for(shape: tuple[int, ...], min_side: int) -> int:
    return max(1, min(8, -(-min_side // max(1, max(shape)))))


def yx_shape(im: LazyImage) -> tuple[int, int]:
    return int(im.data.shape[im.axes.index("Y")]), int(im.data.shape[im.axes.index("X")])
