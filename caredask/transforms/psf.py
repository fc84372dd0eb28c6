"""Tiled PSF convolution of :mod:`caredask.transforms.distortions`: kernels and dask wrapper.

:func:`convolve_psf` is csbdeep's whole-image computation; :func:`convolve_tiles` convolves a
block tile by tile on the global grid (:mod:`caredask.transforms.tiles`), so its result does not
depend on the dask chunks; :func:`convolve_blockwise` applies it in one ``map_overlap``.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from .tiles import align_to_tiles, chunk_starts, float32_blocks, tile_shape, tile_starts

__all__ = ["convolve_blockwise", "convolve_psf", "convolve_tiles"]


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
    for start in tile_starts(core, tile):
        stop = [min(s + t, n) for s, t, n in zip(start, tile, core, strict=True)]
        src = tuple(slice(s, e + lo + hi) for s, e, (lo, hi) in zip(start, stop, need, strict=True))
        kernel = psf
        if channel is not None:
            c = min(c0 + start[channel], psf.shape[channel] - 1)
            kernel = np.take(psf, [c], axis=channel)
        dst = tuple(slice(s, e) for s, e in zip(start, stop, strict=True))
        out[dst] = fftconvolve(ext[src], kernel, mode="valid")
    return out


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
        **float32_blocks(x.ndim),
        psf=psf,
        have=have,
        channel=channel,
        tile=tiles,
        starts=chunk_starts(x.chunks),
    )
