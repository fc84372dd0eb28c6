"""Noise of :mod:`caredask.transforms.distortions`: csbdeep's global-state noise and seeded tiles.

:func:`legacy_noise` draws from numpy's global random state over the whole image, exactly as
csbdeep; :func:`seeded_noise` draws one ``Philox`` stream per tile of the global grid, so
:func:`noise_blockwise` gives the same noise for every chunking.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np

from .tiles import align_to_tiles, chunk_starts, float32_blocks, tile_shape, tile_starts

__all__ = ["legacy_noise", "noise_blockwise", "seeded_noise"]


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
    for start in tile_starts(out.shape, tile):
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
        **float32_blocks(x.ndim),
        seed=seed,
        image=image,
        tile=tiles,
        poisson=poisson,
        sigma=sigma,
        starts=chunk_starts(x.chunks),
    )
