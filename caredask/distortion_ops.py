"""Kernels of :mod:`caredask.distortions`: tiled PSF convolution, noise, sub-/re-sampling.

Each operation is a pure numpy function (its own numpy twin when applied to a whole image with
zero offset) plus a thin dask wrapper making one ``map_overlap`` / ``map_blocks`` call.  The
convolution and the seeded noise work on a fixed global grid of tiles, so their results do not
depend on the dask chunks; see :mod:`caredask.distortions` for what is exact.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

import dask.array as da
import numpy as np

from .errors import InputError

__all__ = [
    "adjust_subsample",
    "align_to_tiles",
    "convolve_blockwise",
    "convolve_psf",
    "convolve_tiles",
    "legacy_noise",
    "noise_blockwise",
    "scale_blockwise",
    "scale_down_up",
    "seeded_noise",
    "tile_shape",
]

_CHUNK_BYTES = 32 * 2**20


# --- pure numpy kernels ---------------------------------------------------------------------


def convolve_psf(x: np.ndarray, psf: np.ndarray, channel: int | None) -> np.ndarray:
    """Whole-image ``fftconvolve(x, psf, mode='same')``, per channel along ``channel``.

    csbdeep's computation: a one-channel ``psf`` is used for every channel.
    """
    from scipy.signal import fftconvolve

    if channel is None:
        return fftconvolve(x, psf, mode="same")
    planes = [
        fftconvolve(np.take(x, i, axis=channel), np.take(psf, i, axis=channel, mode="clip"), "same")
        for i in range(x.shape[channel])
    ]
    return np.stack(planes, axis=channel)


def _halo(psf_shape: Sequence[int], channel: int | None) -> list[tuple[int, int]]:
    """Input needed on each side of an output region for a ``'same'`` convolution."""
    return [(0, 0) if a == channel else (m // 2, (m - 1) // 2) for a, m in enumerate(psf_shape)]


def _tile_starts(shape: Sequence[int], tile: Sequence[int]) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(0, n, t) for n, t in zip(shape, tile, strict=True)))


def convolve_tiles(
    block: np.ndarray,
    psf: np.ndarray,
    depth: Sequence[int],
    channel: int | None,
    tile: Sequence[int],
    c0: int = 0,
) -> np.ndarray:
    """``'same'`` PSF convolution of a block, tile by tile, in float32.

    Parameters
    ----------
    block : ndarray
        The block's core region extended by ``depth`` on both sides of every axis (zeros
        beyond the image).  An axis with ``depth`` smaller than the PSF's halo must span the
        whole image (it is zero-padded here).
    psf : ndarray
        Normalised float32 PSF, same ndim as ``block``; along ``channel`` of size 1 or the
        number of channels.
    depth : sequence of int
        Halo present in ``block`` per axis.
    channel : int or None
        Channel axis (``tile`` must be 1 along it), convolved channel by channel.
    tile : sequence of int
        Tile shape; tiles start at the core's origin, which lies on the global tile grid.
    c0 : int
        Global index of the block's first channel.

    Returns
    -------
    ndarray
        float32, the core's shape.  Each tile is convolved from its own input window, so the
        result does not depend on how the image is cut into blocks.
    """
    from scipy.signal import fftconvolve

    need = _halo(psf.shape, channel)
    pad = [(max(lo - d, 0), max(hi - d, 0)) for (lo, hi), d in zip(need, depth, strict=True)]
    ext = np.pad(block, pad) if any(p != (0, 0) for p in pad) else block
    cut = tuple(
        slice(max(d - lo, 0), ext.shape[a] - max(d - hi, 0))
        for a, ((lo, hi), d) in enumerate(zip(need, depth, strict=True))
    )
    ext = ext[cut].astype(np.float32, copy=False)
    core = tuple(n - lo - hi for n, (lo, hi) in zip(ext.shape, need, strict=True))
    out = np.empty(core, np.float32)
    for start in _tile_starts(core, tile):
        stop = [min(s + t, n) for s, t, n in zip(start, tile, core, strict=True)]
        src = tuple(slice(s, e + lo + hi) for s, e, (lo, hi) in zip(start, stop, need, strict=True))
        kernel = psf
        if channel is not None:
            c = min(c0 + start[channel], psf.shape[channel] - 1)
            kernel = np.take(psf, [c], axis=channel)
        dst = tuple(slice(s, e) for s, e in zip(start, stop, strict=True))
        out[dst] = fftconvolve(ext[src], kernel, mode="valid")
    return out


def seeded_noise(
    block: np.ndarray,
    seed: int,
    image: int,
    tile: Sequence[int],
    offset: Sequence[int],
    poisson: bool,
    sigma: float,
) -> np.ndarray:
    """Poisson then Gaussian noise, from one random stream per tile of the global grid.

    Parameters
    ----------
    block : ndarray
        float32 pixels of a block starting at ``offset``, which lies on the tile grid.
    seed, image : int
        The transform's seed and the image's index; with the global tile index they key each
        tile's ``Philox`` stream (``SeedSequence(seed, spawn_key=(image, *tile_index))``).
    tile : sequence of int
        Tile shape of the global grid.
    offset : sequence of int
        Global position of the block's first pixel.
    poisson : bool
        Replace each pixel by a Poisson draw with mean ``rint(max(0, pixel))``.
    sigma : float
        Add N(0, sigma) noise (float32) and clip at 0 when ``sigma > 0``.

    Returns
    -------
    ndarray
        float32, the block's shape; identical for every chunking of the image.
    """
    out = np.array(block, dtype=np.float32)
    for start in _tile_starts(out.shape, tile):
        index = tuple((o + s) // t for o, s, t in zip(offset, start, tile, strict=True))
        rng = np.random.Generator(
            np.random.Philox(np.random.SeedSequence(seed, spawn_key=(image, *index)))
        )
        sl = tuple(slice(s, s + t) for s, t in zip(start, tile, strict=True))
        v = out[sl]
        if poisson:
            v = rng.poisson(np.rint(np.maximum(0, v))).astype(np.float32)
        if sigma > 0:
            v = np.maximum(0, v + rng.normal(0, sigma, v.shape).astype(np.float32))
        out[sl] = v
    return out


def legacy_noise(x: np.ndarray, poisson: bool, sigma: float) -> np.ndarray:
    """csbdeep's noise, from numpy's global random state, over the whole image in C order.

    Poisson with the **truncated** mean ``int(max(0, x))`` (csbdeep's arithmetic), then
    ``max(0, x + N(0, sigma))`` in float32.
    """
    x = np.asarray(x, dtype=np.float32)
    if poisson:
        x = np.random.poisson(np.maximum(0, x).astype(int)).astype(np.float32)  # noqa: NPY002
    if sigma > 0:
        noise = np.random.normal(0, sigma, size=x.shape).astype(np.float32)  # noqa: NPY002
        x = np.maximum(0, x + noise)
    return x


def scale_down_up(x: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """``zoom`` by ``1/factor`` (order 0) then by ``factor`` (order 1) along ``axis`` only.

    csbdeep's arithmetic (the axis moved to the front, scipy's defaults, UserWarnings
    silenced).  Each output line depends only on the same line of the input, so blocks that
    span the whole ``axis`` give exactly the whole-image result.
    """
    from scipy.ndimage import zoom

    a = np.moveaxis(x, axis, 0)
    f = np.ones(a.ndim)
    f[0] = factor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = zoom(zoom(a, 1 / f, order=0), f, order=1)
    if out.shape != a.shape:
        raise InputError(
            f"subsampling by {factor} changed the axis length {a.shape[0]} to {out.shape[0]}; "
            "use a subsample factor that divides the (cropped) length"
        )
    return np.moveaxis(out, 0, axis)


# --- csbdeep's subsample adjustment ---------------------------------------------------------


def _decimal_digits(v: float, n: int | None = None) -> tuple[int, int]:
    text = str(v if n is None else round(v, n))
    if "." not in text:
        raise InputError(f"subsample factor {v!r} must be a plain decimal number, e.g. 2.5")
    digits = text.split(".", 1)[1]
    return int(digits), len(digits)


def _crop_size(d: int, s: float, n: int, denominator: int) -> float:
    s_n = round(s, n)
    multiple = (np.floor(d / s_n) // denominator) * denominator
    return float(multiple * s_n)


def adjust_subsample(d: int, s: float, c: float) -> tuple[float, int]:
    """csbdeep's rule for the subsample factor and the cropped axis length.

    The cropped length is the largest multiple of ``s`` that is an integer; decimals of ``s``
    are dropped one by one while that loses more than the fraction ``c`` of ``d``.

    Returns
    -------
    (float, int)
        The (possibly rounded) factor and the cropped length, e.g. ``(2.7, 81)`` for
        ``d=100, s=2.7``.

    Raises
    ------
    InputError
        No crop within ``c`` works.
    """
    s = float(s)
    dec, n = _decimal_digits(s)
    denominator = Fraction(dec, 10**n).denominator
    while n > 0 and (d - _crop_size(d, s, n, denominator)) / d > c:
        n -= 1
        denominator = Fraction(_decimal_digits(s, n)[0], 10**n).denominator
    size = _crop_size(d, s, n, denominator)
    if size == 0 or (d - size) / d > c:
        raise InputError(
            f"subsample factor {s:g} too large (crop_threshold={c:g}) for an axis of length {d}: "
            "use a smaller factor or a larger crop_threshold"
        )
    return round(s, n), round(size)


# --- dask wrappers ----------------------------------------------------------------------------


def _aligned_chunks(
    shape: Sequence[int],
    chunksize: Sequence[int],
    tile: Sequence[int],
    minimum: Sequence[int],
    itemsize: int,
) -> tuple[tuple[int, ...], ...]:
    """Chunks made of whole tiles (the last one may end in a partial tile), each at least
    ``minimum`` long unless it spans the axis, about ``_CHUNK_BYTES`` large."""
    size = [
        min(-(-max(c, m, 1) // t) * t, n)
        for n, c, t, m in zip(shape, chunksize, tile, minimum, strict=True)
    ]
    floor = [min(-(-max(m, 1) // t) * t, n) for n, t, m in zip(shape, tile, minimum, strict=True)]
    while int(np.prod(size)) * itemsize > _CHUNK_BYTES:
        j = int(np.argmax([s / f for s, f in zip(size, floor, strict=True)]))
        if size[j] <= floor[j]:
            break
        size[j] = max(floor[j], (size[j] // 2) // tile[j] * tile[j])
    chunks = []
    for n, s, m in zip(shape, size, minimum, strict=True):
        c = [s] * (n // s)
        rest = n - s * len(c)
        if rest and c and rest < m:
            c[-1] += rest  # too short for the halo: merge into the previous chunk
        elif rest:
            c.append(rest)
        chunks.append(tuple(c))
    return tuple(chunks)


def _is_aligned(
    chunks: Sequence[Sequence[int]], tile: Sequence[int], minimum: Sequence[int]
) -> bool:
    for c, t, m in zip(chunks, tile, minimum, strict=True):
        if len(c) > 1 and (any(v % t for v in c[:-1]) or min(c) < m):
            return False
    return True


def _starts(chunks: Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in np.cumsum((0, *c[:-1]))) for c in chunks)


def _convolve_chunk(
    block: np.ndarray,
    psf: np.ndarray,
    have: tuple[int, ...],
    channel: int | None,
    tile: tuple[int, ...],
    starts: tuple[tuple[int, ...], ...],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    assert block_id is not None
    c0 = 0 if channel is None else starts[channel][block_id[channel]]
    return convolve_tiles(block, psf, have, channel, tile, c0)


def _noise_chunk(
    block: np.ndarray,
    seed: int,
    image: int,
    tile: tuple[int, ...],
    poisson: bool,
    sigma: float,
    starts: tuple[tuple[int, ...], ...],
    block_id: tuple[int, ...] | None = None,
) -> np.ndarray:
    assert block_id is not None
    offset = [s[i] for s, i in zip(starts, block_id, strict=True)]
    return seeded_noise(block, seed, image, tile, offset, poisson, sigma)


def _zoom_chunk(block: np.ndarray, axis: int, factor: float) -> np.ndarray:
    return scale_down_up(block, axis, factor)


def tile_shape(ndim: int, tile: int, channel: int | None) -> tuple[int, ...]:
    """The global tile grid: ``tile`` on every axis, 1 along the channel axis."""
    return tuple(1 if a == channel else int(tile) for a in range(ndim))


def align_to_tiles(x: da.Array, tiles: Sequence[int], minimum: Sequence[int]) -> da.Array:
    """Rechunk ``x`` so every chunk holds whole tiles (and is at least ``minimum`` long)."""
    if _is_aligned(x.chunks, tiles, minimum):
        return x
    chunks = _aligned_chunks(
        x.shape, tuple(map(int, x.chunksize)), tiles, minimum, x.dtype.itemsize
    )
    return x.rechunk(chunks)


def convolve_blockwise(x: da.Array, psf: np.ndarray, channel: int | None, tile: int) -> da.Array:
    """Lazy tiled PSF convolution: :func:`convolve_tiles` in one ``map_overlap``.

    ``x`` is rechunked to whole tiles of the global grid; the halo is ``psf.shape // 2`` on
    every axis split into several chunks (an axis held in one chunk is padded in the kernel).
    """
    tiles = tile_shape(x.ndim, tile, channel)
    halo = [lo for lo, _ in _halo(psf.shape, channel)]
    x = align_to_tiles(x, tiles, halo)
    have = tuple(h if len(c) > 1 else 0 for h, c in zip(halo, x.chunks, strict=True))
    return da.map_overlap(
        _convolve_chunk,
        x,
        depth=dict(enumerate(have)),
        boundary=0,
        trim=False,
        chunks=x.chunks,
        dtype=np.float32,
        meta=np.empty((0,) * x.ndim, np.float32),
        psf=psf,
        have=have,
        channel=channel,
        tile=tiles,
        starts=_starts(x.chunks),
    )


def noise_blockwise(
    x: da.Array,
    seed: int,
    image: int,
    tile: int,
    channel: int | None,
    poisson: bool,
    sigma: float,
) -> da.Array:
    """Lazy :func:`seeded_noise` (one ``map_blocks`` on chunks of whole tiles)."""
    tiles = tile_shape(x.ndim, tile, channel)
    x = align_to_tiles(x, tiles, [1] * x.ndim)
    return da.map_blocks(
        _noise_chunk,
        x,
        dtype=np.float32,
        meta=np.empty((0,) * x.ndim, np.float32),
        seed=seed,
        image=image,
        tile=tiles,
        poisson=poisson,
        sigma=sigma,
        starts=_starts(x.chunks),
    )


def scale_blockwise(x: da.Array, axis: int, factor: float) -> da.Array:
    """Lazy :func:`scale_down_up`: chunks span ``axis`` (rechunked if needed)."""
    if len(x.chunks[axis]) > 1:
        spec: dict[int, Any] = {axis: -1}
        others = [int(c) for a, c in enumerate(x.chunksize) if a != axis]
        if x.shape[axis] * int(np.prod(others)) * x.dtype.itemsize > _CHUNK_BYTES:
            spec.update({a: "auto" for a in range(x.ndim) if a != axis})
        x = x.rechunk(spec, block_size_limit=_CHUNK_BYTES)
    return da.map_blocks(
        _zoom_chunk,
        x,
        dtype=np.float32,
        meta=np.empty((0,) * x.ndim, np.float32),
        axis=axis,
        factor=factor,
    )
