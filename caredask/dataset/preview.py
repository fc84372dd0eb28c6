"""A PNG preview of sampled training patches (source next to target), written with Pillow.

The preview shows patches exactly as they were sampled (the returned ``X``/``Y`` or the arrays
of a ``.npz`` / ``.zarr`` training data file), never the full images.  Each row is one patch;
for each shown channel there is a source column and a target column.  Axes other than ``Y`` and
``X`` (e.g. ``Z``) are max-projected.  Each tile is scaled to 8 bits with its own 1st and 99.8th
percentile (source and target separately, so both are visible whatever their units).

An existing preview is never overwritten silently: by default the next free name
(``preview-1.png``, ``preview-2.png``, ...) is used; ``if_exists='error'`` raises and
``if_exists='overwrite'`` replaces the file (atomically).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..axes import axes_check_and_normalize
from ..errors import AxesError, InputError
from ..visual.render import save_png

__all__ = ["free_path", "patch_tile", "preview_grid", "write_preview"]

_GAP = 2
_HEADER = 14
_MIN_TILE = 96


def patch_tile(patch: np.ndarray, axes: str) -> np.ndarray:
    """One patch (axes without ``S`` and ``C``) as a 2D ``(Y, X)`` max projection, float64."""
    if "Y" not in axes or "X" not in axes:
        raise AxesError(f"preview needs Y and X axes in the patches; got axes {axes!r}")
    rest = [i for i, a in enumerate(axes) if a not in "YX"]
    p = np.asarray(patch, dtype=np.float64)
    p = p.max(axis=tuple(rest)) if rest else p
    first = next(a for a in axes if a in "YX")
    return p if first == "Y" else p.T


def _to_uint8(tile: np.ndarray) -> np.ndarray:
    finite = tile[np.isfinite(tile)]
    if finite.size == 0:
        return np.zeros(tile.shape, np.uint8)
    lo, hi = np.percentile(finite, [1, 99.8])
    scaled = (np.nan_to_num(tile, nan=lo) - lo) / (hi - lo) if hi > lo else tile * 0
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def preview_grid(
    X: Any,
    Y: Any,
    axes: str,
    indices: Sequence[int],
    max_channels: int = 3,
) -> tuple[np.ndarray, list[str]]:
    """The preview as a uint8 grayscale array, and the column titles.

    Parameters
    ----------
    X, Y : array_like
        Patches with ``axes`` (``'S'`` first, e.g. ``'SCYX'``): numpy, dask or zarr arrays.
    axes : str
        Axes of ``X`` and ``Y``.
    indices : sequence of int
        Patches to show (one row each).
    max_channels : int
        At most this many channels are shown.
    """
    axes = axes_check_and_normalize(axes, length=len(X.shape))
    if axes[0] != "S":
        raise AxesError(f"patches must have the sample axis S first; got axes {axes!r}")
    inner = axes[1:]
    rows = []
    for i in indices:
        x, y = np.asarray(X[int(i)]), np.asarray(Y[int(i)])
        chans = inner.index("C") if "C" in inner else None
        xs = [x] if chans is None else list(np.moveaxis(x, chans, 0))[:max_channels]
        ys = [y] if chans is None else list(np.moveaxis(y, chans, 0))[:max_channels]
        sub = inner.replace("C", "")
        row = []
        for xc, yc in zip(xs, ys, strict=True):
            row += [_to_uint8(patch_tile(xc, sub)), _to_uint8(patch_tile(yc, sub))]
        rows.append(row)
    n_c = len(rows[0]) // 2
    titles = [f"{k} c{c}" if n_c > 1 else k for c in range(n_c) for k in ("source", "target")]
    return _assemble(rows), titles


def _assemble(rows: list[list[np.ndarray]]) -> np.ndarray:
    th, tw = rows[0][0].shape
    scale = max(1, min(8, -(-_MIN_TILE // max(th, tw))))
    th, tw = th * scale, tw * scale
    n_r, n_c = len(rows), len(rows[0])
    h = _HEADER + n_r * (th + _GAP) + _GAP
    w = n_c * (tw + _GAP) + _GAP
    grid = np.full((h, w), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            big = np.kron(tile, np.ones((scale, scale), np.uint8))
            y0, x0 = _HEADER + _GAP + r * (th + _GAP), _GAP + c * (tw + _GAP)
            grid[y0 : y0 + th, x0 : x0 + tw] = big
    return grid


def free_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if it does not exist, else the first free ``stem-1.suffix``, ``stem-2...``."""
    p = Path(path)
    k = 0
    while os.path.lexists(p):
        k += 1
        p = Path(path).with_name(f"{Path(path).stem}-{k}{Path(path).suffix}")
    return p


def _image(grid: np.ndarray, titles: list[str], tile_w: int) -> Any:
    try:
        from PIL import Image, ImageDraw
    except ModuleNotFoundError as e:  # pragma: no cover - Pillow is a dependency
        raise InputError("writing a preview needs Pillow: pip install pillow") from e
    img = Image.fromarray(grid)
    draw = ImageDraw.Draw(img)
    for c, t in enumerate(titles):
        draw.text((_GAP + c * (tile_w + _GAP) + 2, 1), t, fill=0)
    return img


def write_preview(
    X: Any,
    Y: Any,
    axes: str,
    path: str | os.PathLike[str],
    *,
    n: int = 8,
    seed: int = 0,
    max_channels: int = 3,
    if_exists: str = "increment",
) -> Path:
    """Write a PNG of ``n`` sampled patch pairs; return the path written.

    Parameters
    ----------
    X, Y : array_like
        The sampled patches (``axes`` with ``S`` first), e.g. from
        :func:`caredask.generate_training_data` or a training data file.
    axes : str
        Axes of ``X``/``Y`` (e.g. ``'SCYX'``, ``'SCZYX'``).
    path : path
        Where to write (``.png``).
    n : int
        Number of patches shown (all if fewer), chosen with ``seed`` without replacement and
        shown in increasing order.
    seed : int
        Seed of the choice of patches.
    max_channels : int
        Channels shown per patch.
    if_exists : {'increment', 'error', 'overwrite'}
        What to do when ``path`` exists: use the next free name (default), raise, or replace.

    Raises
    ------
    InputError
        No patches, ``X``/``Y`` of different shapes, bad ``if_exists``, or an existing file
        with ``if_exists='error'``.
    """
    if if_exists not in ("increment", "error", "overwrite"):
        raise InputError(f"if_exists={if_exists!r}: use 'increment', 'error' or 'overwrite'")
    if tuple(X.shape) != tuple(Y.shape) or len(X.shape) < 3 or X.shape[0] == 0:
        raise InputError(
            f"preview needs equally shaped, non-empty patch arrays; got X {tuple(X.shape)} and "
            f"Y {tuple(Y.shape)}"
        )
    m = int(X.shape[0])
    idx = np.sort(np.random.default_rng(seed).choice(m, size=min(n, m), replace=False))
    grid, titles = preview_grid(X, Y, axes, idx.tolist(), max_channels)
    tile_w = (grid.shape[1] - _GAP) // len(titles) - _GAP
    img = _image(grid, titles, tile_w)
    return _save_png(img, Path(path), if_exists)


def _save_png(img: Any, target: Path, if_exists: str) -> Path:
    """Save ``img`` at ``target`` as ``if_exists`` says (see :func:`write_preview`)."""
    if if_exists == "overwrite":
        return save_png(img, target, overwrite=True)
    if if_exists == "error" and os.path.lexists(target):
        raise InputError(
            f"{target} exists; pass if_exists='increment' (or --overwrite) or another name"
        )
    while True:
        target = free_path(target)
        try:  # exclusive: never clobbers a concurrent writer
            return save_png(img, target, overwrite=False)
        except InputError:
            if if_exists == "error":
                raise InputError(f"{target} exists; choose another name") from None
