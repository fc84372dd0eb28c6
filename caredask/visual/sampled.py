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
from ..rawdata import open_masks
from ..writers.store import TrainingStore
from .render import (
    BOX,
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
from .thresholds import preview_thresholds

__all__ = ["preview", "preview_store"]

_HEAD, _GAP, _TILE, _PAIRS_PER_ROW = 14, 6, 64, 4


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
    text = f"{name}: {n} patches, threshold {fmt_value(rec.get('threshold'))}"
    if pairs:
        a = np.asarray(pairs, dtype=np.float64)
        text += (
            f", pmin {fmt_value(a[:, 0].min())}-{fmt_value(a[:, 0].max())}"
            f", pmax {fmt_value(a[:, 1].min())}-{fmt_value(a[:, 1].max())}"
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
    factors = [pool_factor(yx_shape(im), max_side) for im in fitted]
    pictures = _pictures(fitted, shown, factors, ps, masks, use_target)
    rows = []
    for im, r, f, (proj, elig) in zip(fitted, shown, factors, pictures, strict=True):
        mine = np.flatnonzero(owner == int(r["index"]))
        rows.append((im, r, f, proj, elig, mine))
    return _draw_store(st, rows, ps, n_pairs, output, overwrite)


def _pictures(
    images: list[LazyImage],
    records: list[dict[str, Any]],
    factors: list[int],
    ps: Sequence[int],
    masks: list[Any] | None,
    tint: bool,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Projections and (with ``tint``) projected eligible regions, computed in one pass."""
    lazy: list[Any] = []
    for i, (im, r, f) in enumerate(zip(images, records, factors, strict=True)):
        lazy.append(project(im.data, im.axes, f))
        if tint:
            thr = r["threshold"] if r["threshold"] is None else np.float32(r["threshold"])
            m = None if masks is None else masks[i]
            lazy.append(project(eligible_centres(im.data, ps, thr, m), im.axes, f))
    done = dask.compute(*lazy)
    if tint:
        return [(done[2 * i], done[2 * i + 1]) for i in range(len(images))]
    return [(d, None) for d in done]


def _open(source: Any, axes: str | None, recorded: str, options: dict[str, Any]) -> Any:
    """Images with ``axes``, else their metadata's, else the axes the store records."""
    if axes is not None:
        return open_images(source, axes, **options)
    try:
        return open_images(source, None, **options)
    except AxesError:
        return open_images(source, recorded, **options)


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
        scale = scale_for(proj.shape, 256)
        pic = panel_image(proj, elig, scale)
        n_show = min(len(mine), n_pairs)
        grid_rows = -(-n_show // _PAIRS_PER_ROW)
        grid_h = grid_rows * (_TILE + 2) if n_show else 0
        h = _HEAD + max(pic.shape[0], grid_h) + _GAP
        layout.append((im, r, f, pic, mine, y, scale))
        width = max(width, pic.shape[1] + _GAP + _PAIRS_PER_ROW * 2 * (_TILE + 2))
        y += h
    img = canvas(width + _GAP, y)
    draw = ImageDraw.Draw(img)
    panels = []
    for im, r, f, pic, mine, y0, scale in layout:
        draw_text(img, (2, y0 + 1), _caption(r, len(mine)))
        oy = y0 + _HEAD
        paste(img, pic, (0, oy))
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
            paste(img, np.repeat(tile[..., None], 3, axis=-1), (gx, gy))
    return save_png(img, output, overwrite), panels


def _is_store(data: Any) -> bool:
    if isinstance(data, TrainingStore):
        return True
    return (
        isinstance(data, str | os.PathLike)
        and (Path(data) / "zarr.json").is_file()
        and ("caredask-training-data" in (Path(data) / "zarr.json").read_text())
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
