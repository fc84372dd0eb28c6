"""``caredask.preview``: see what was sampled, or what a filter threshold would allow.

Two kinds of picture, both PNG files that are never overwritten unless asked:

* of a training data store (``.zarr``, which records ``patch_start``/``patch_image`` and each
  image's threshold and percentiles): one row per image (up to ``max_images``), the maximum
  projection of the target with the eligible region tinted green and the sampled patches'
  boxes in red, the threshold and percentiles in the caption, next to a grid of the image's
  source/target patch pairs (as stored);
* of images and filter thresholds, without computing patches: one row per image, one panel
  per threshold, each with the region the background filter leaves eligible tinted.

Projections and eligible regions are computed blockwise (:mod:`caredask.visual.render`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np

from ..dataset.preview import _to_uint8 as tile_uint8
from ..dataset.preview import patch_tile
from ..errors import AxesError, InputError
from ..loaders import LazyImage, open_images
from ..masks.filters import BackgroundFilter
from ..rawdata import open_masks
from ..statistics.percentile import percentile
from ..writers.store import TrainingStore
from .render import (
    BOX,
    Panel,
    eligible_centres,
    panel_image,
    pool_factor,
    project,
    save_png,
)

__all__ = ["preview", "preview_store", "preview_thresholds"]

_HEAD, _GAP, _TILE, _PAIRS_PER_ROW = 14, 6, 64, 4


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def _canvas(w: int, h: int) -> Any:
    from PIL import Image

    return Image.new("RGB", (w, h), (255, 255, 255))


def _text(img: Any, xy: tuple[int, int], text: str) -> None:
    from PIL import ImageDraw

    ImageDraw.Draw(img).text(xy, text, fill=(0, 0, 0))


def _paste(img: Any, rgb: np.ndarray, xy: tuple[int, int]) -> None:
    from PIL import Image

    img.paste(Image.fromarray(rgb), xy)


def _scale_for(shape: tuple[int, ...], min_side: int) -> int:
    return max(1, min(8, -(-min_side // max(1, max(shape)))))


def _fit(img: LazyImage, axes: str, shape: Sequence[int], what: str) -> LazyImage:
    """``img`` in the record's axes order (a permutation), checked against its shape."""
    if img.axes != axes:
        if sorted(img.axes) != sorted(axes):
            raise InputError(
                f"{img.source or img.name} has axes {img.axes!r} but the {what} records "
                f"{axes!r}; pass images with those axes"
            )
        perm = [img.axes.index(a) for a in axes]
        img = LazyImage(img.data.transpose(perm), axes, img.name, img.source)
    if tuple(img.data.shape) != tuple(shape):
        raise InputError(
            f"{img.source or img.name} has shape {tuple(img.data.shape)} but the {what} "
            f"records {tuple(shape)} for it; pass the images the patches were made from"
        )
    return img


def _pair_tiles(store: TrainingStore, rows: np.ndarray) -> list[np.ndarray]:
    inner = store.axes[1:]
    sub = inner.replace("C", "")
    tiles = []
    for r in rows:
        x, y = store[int(r)]
        for p in (x, y):
            p = p.max(axis=inner.index("C")) if "C" in inner else p
            t = tile_uint8(patch_tile(p, sub))
            k = max(1, _TILE // max(t.shape))
            tiles.append(np.kron(t, np.ones((k, k), np.uint8))[:_TILE, :_TILE])
    return tiles


def _caption(rec: dict[str, Any], n: int) -> str:
    pairs = rec.get("percentiles")
    name = Path(str(rec.get("name"))).name
    text = f"{name}: {n} patches, threshold {_fmt(rec.get('threshold'))}"
    if pairs:
        a = np.asarray(pairs, dtype=np.float64)
        text += (
            f", pmin {_fmt(a[:, 0].min())}-{_fmt(a[:, 0].max())}"
            f", pmax {_fmt(a[:, 1].min())}-{_fmt(a[:, 1].max())}"
        )
    return text


def preview_store(
    store: TrainingStore | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    target: Any = None,
    axes: str | None = None,
    max_images: int = 4,
    n_pairs: int = 8,
    max_side: int = 384,
    overwrite: bool = False,
    mask_options: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Path, list[Panel]]:
    """Picture of the patches sampled into a ``.zarr`` training data store.

    Parameters
    ----------
    store : TrainingStore or path
        A caredask ``.zarr`` store (it records patch coordinates).
    output : path
        The PNG to write.
    target : path, URI, array or list of them, optional
        The target images the patches were made from (same order); default: the recorded
        source images, shown without the eligible region (it depends on the target).
    axes : str, optional
        Axes of the images, if their files do not say.
    max_images, n_pairs : int
        Images shown, and patch pairs shown per image.
    max_side : int
        Largest side of a projection in image pixels after pooling.
    overwrite : bool
        Replace an existing ``output``.
    mask_options : dict, optional
        ``mask=``/``mask_label=``/... as given to :meth:`caredask.RawData.from_sources`,
        to include the pixel masks in the tinted region.
    **options
        Passed to :func:`caredask.open_images`.

    Returns
    -------
    path, panels
        The PNG written, and where each image's picture lies in it.
    """
    st = store if isinstance(store, TrainingStore) else TrainingStore(store)
    rec, starts, owner = st.provenance, st.patch_start, st.patch_image
    if starts is None or owner is None or not rec.get("images"):
        raise InputError(
            f"{st.path} records no patch coordinates (an .npz file?); preview a .zarr store "
            "written by caredask"
        )
    records = sorted(rec["images"], key=lambda r: int(r["index"]))
    use_target = target is not None
    imgs = _open(target if use_target else rec["sources"], axes, rec["axes"], options)
    if len(imgs) != len(records):
        raise InputError(
            f"{len(imgs)} images given for the {len(records)} images recorded in {st.path}; "
            "pass the target images the patches were made from (one per image, same order)"
        )
    shown = records[:max_images]
    what = f"store {st.path}"
    fitted = [_fit(imgs[int(r["index"])], rec["axes"], r["shape"], what) for r in shown]
    masks = (
        open_masks(fitted, fitted, axes, **mask_options, **options)
        if mask_options and use_target
        else None
    )
    ps = rec["patch_size"]
    factors = [pool_factor(_yx_shape(im), max_side) for im in fitted]
    lazy: list[Any] = []
    for i, (im, r, f) in enumerate(zip(fitted, shown, factors, strict=True)):
        lazy.append(project(im.data, im.axes, f))
        m = None if masks is None else masks[i]
        thr = r["threshold"] if r["threshold"] is None else np.float32(r["threshold"])
        elig = eligible_centres(im.data, ps, thr, m) if use_target else None
        lazy.append(None if elig is None else project(elig, im.axes, f))
    done = dask.compute(*[a for a in lazy if a is not None])
    it = iter(done)
    results = [next(it) if a is not None else None for a in lazy]
    rows = []
    for j, (im, r, f) in enumerate(zip(fitted, shown, factors, strict=True)):
        mine = np.flatnonzero(owner == int(r["index"]))
        rows.append((im, r, f, results[2 * j], results[2 * j + 1], mine))
    return _draw_store(st, rows, ps, n_pairs, output, overwrite)


def _open(source: Any, axes: str | None, recorded: str, options: dict[str, Any]) -> Any:
    """Images with ``axes``, else their metadata's, else the axes the store records."""
    if axes is not None:
        return open_images(source, axes, **options)
    try:
        return open_images(source, None, **options)
    except AxesError:
        return open_images(source, recorded, **options)


def _yx_shape(im: LazyImage) -> tuple[int, int]:
    return int(im.data.shape[im.axes.index("Y")]), int(im.data.shape[im.axes.index("X")])


def _draw_store(
    st: TrainingStore,
    rows: list[Any],
    ps: Sequence[int],
    n_pairs: int,
    output: Any,
    overwrite: bool,
) -> tuple[Path, list[Panel]]:
    from PIL import ImageDraw

    starts = st.patch_start
    assert starts is not None
    axes = rows[0][0].axes
    iy, ix = axes.index("Y"), axes.index("X")
    layout, width, y = [], 0, 0
    for im, r, f, proj, elig, mine in rows:
        scale = _scale_for(proj.shape, 256)
        pic = panel_image(proj, elig, scale)
        n_show = min(len(mine), n_pairs)
        grid_rows = -(-n_show // _PAIRS_PER_ROW)
        grid_h = grid_rows * (_TILE + 2) if n_show else 0
        h = _HEAD + max(pic.shape[0], grid_h) + _GAP
        layout.append((im, r, f, pic, mine, y, scale))
        width = max(width, pic.shape[1] + _GAP + _PAIRS_PER_ROW * 2 * (_TILE + 2))
        y += h
    img = _canvas(width + _GAP, y)
    draw = ImageDraw.Draw(img)
    panels = []
    for im, r, f, pic, mine, y0, scale in layout:
        _text(img, (2, y0 + 1), _caption(r, len(mine)))
        oy = y0 + _HEAD
        _paste(img, pic, (0, oy))
        panel = Panel(im.name, (0, oy), (pic.shape[1], pic.shape[0]), scale, f)
        for row in mine:
            b = panel.box((starts[row][iy], starts[row][ix]), (ps[iy], ps[ix]))
            panel.boxes.append(b)
            draw.rectangle(b, outline=BOX, width=1)
        panels.append(panel)
        tiles = _pair_tiles(st, mine[:n_pairs])
        for t, tile in enumerate(tiles):
            gx = pic.shape[1] + _GAP + (t % (2 * _PAIRS_PER_ROW)) * (_TILE + 2)
            gy = oy + (t // (2 * _PAIRS_PER_ROW)) * (_TILE + 2)
            _paste(img, np.repeat(tile[..., None], 3, axis=-1), (gx, gy))
    return save_png(img, output, overwrite), panels


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
        f = pool_factor(_yx_shape(im), max_side)
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
        scale = _scale_for(proj.shape, 200)
        row = [panel_image(proj, arrays[i * per + 1 + t], scale) for t in range(n_t)]
        pics.append((y, row))
        width = max(width, n_t * (row[0].shape[1] + _GAP))
        for t in range(n_t):
            ox = t * (row[0].shape[1] + _GAP)
            size = (row[0].shape[1], row[0].shape[0])
            panels.append(Panel(im.name, (ox, y + 2 * _HEAD), size, scale, f))
        y += 2 * _HEAD + row[0].shape[0] + _GAP
    img = _canvas(max(width, 300), y)
    for i, (y0, row) in enumerate(pics):
        p_i = caps[i * n_t][1]
        _text(img, (2, y0 + 1), f"{imgs[i].name}: p{pct:g} = {_fmt(p_i)}")
        for t, pic in enumerate(row):
            thr_frac, _, thr, _ = caps[i * n_t + t]
            ox = t * (pic.shape[1] + _GAP)
            label = f"{thr_frac:g} -> {_fmt(thr)}: {fracs[i * n_t + t]:.0%} eligible"
            _text(img, (ox + 2, y0 + _HEAD + 1), label)
            _paste(img, pic, (ox, y0 + 2 * _HEAD))
    return save_png(img, output, overwrite), panels


def _is_store(data: Any) -> bool:
    if isinstance(data, TrainingStore):
        return True
    return isinstance(data, str | os.PathLike) and (Path(data) / "zarr.json").is_file() and (
        "caredask-training-data" in (Path(data) / "zarr.json").read_text()
    )


def preview(
    data: Any,
    output: str | os.PathLike[str],
    *,
    filter_threshold: Sequence[float] | float | None = None,
    patch_size: Sequence[int] | None = None,
    filter_percentile: float = 99.9,
    target: Any = None,
    axes: str | None = None,
    max_images: int = 4,
    n_pairs: int = 8,
    overwrite: bool = False,
    mask: Any = None,
    mask_label: str | None = None,
    mask_values: Sequence[int] | None = None,
    mask_axes: str | None = None,
    **options: Any,
) -> Path:
    """Write a PNG showing what was sampled, or what filter thresholds would allow.

    Parameters
    ----------
    data : TrainingStore, path, or images
        A ``.zarr`` training data store (its patches are shown; see :func:`preview_store`),
        or target images in any format caredask reads (then ``filter_threshold`` values are
        shown side by side, without computing patches).
    output : path
        The PNG to write; an existing file is replaced only with ``overwrite=True``.
    filter_threshold : float or sequence of float, optional
        Thresholds to compare (images only; default 0.4).
    patch_size : sequence of int, optional
        Patch size (images only; required there): the filter's window and the border.
    filter_percentile : float
        The filter's percentile (images only).
    target : optional
        For a store: the target images the patches came from, to tint the eligible region.
    axes, max_images, n_pairs, overwrite
        Axes of the images; images shown; patch pairs per image; replace ``output``.
    mask, mask_label, mask_values, mask_axes
        Pixel masks as for :meth:`caredask.RawData.from_sources`, included in the tint.
    **options
        Passed to :func:`caredask.open_images`.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    InputError
        ``output`` exists, missing ``patch_size`` for images, images that do not match the
        store's record (named), or a store without patch coordinates.
    """
    masks = {
        k: v
        for k, v in dict(
            mask=mask, mask_label=mask_label, mask_values=mask_values, mask_axes=mask_axes
        ).items()
        if v is not None
    }
    if _is_store(data) and filter_threshold is None:
        path, _ = preview_store(
            data, output, target=target, axes=axes, max_images=max_images, n_pairs=n_pairs,
            overwrite=overwrite, mask_options=masks or None, **options,
        )  # fmt: skip
        return path
    if patch_size is None:
        raise InputError(
            "a threshold preview of images needs patch_size (the filter's window), e.g. "
            "patch_size=(16, 64, 64)"
        )
    ts = [0.4] if filter_threshold is None else np.atleast_1d(filter_threshold).tolist()
    path, _ = preview_thresholds(
        data, output, ts, patch_size, percentile_=filter_percentile, axes=axes,
        max_images=max_images, overwrite=overwrite, mask_options=masks or None, **options,
    )  # fmt: skip
    return path
