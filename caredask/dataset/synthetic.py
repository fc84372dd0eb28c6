"""Fast, deterministic synthetic CARE-like image pairs (benchmarks, tests, demos).

The recipe follows the csbdeep baseline measurements (reference doc, section 3.1):

* target = background 100 + anisotropic Gaussian blobs + N(0, 3);
* blobs: 90 % with sigma_xy in [1.5, 4] px and amplitude in [400, 4000], 10 % with sigma_xy in
  [6, 14] px and amplitude in [150, 800]; sigma_z = sigma_xy / 2;
* source = Poisson(clean / 8) * 8 + N(0, 30) + 50, where clean = background + blobs;
* both are rounded, clipped to [0, 65535] and cast to uint16.

The blob density gives about a third of eligible patch centres under csbdeep's default filter
(``no_background_patches(0.4, 99.9)``) for patch 128x128 (2D) or 16x64x64 (3D); ``dense=True``
uses 14 times more blobs (about 98 % eligible).

Volumes are rendered slab by slab along Z, each blob into every slab its +-4 sigma box touches,
and the noise of every Z plane comes from its own generator seeded by ``(seed, stream, z)``, so the
result does not depend on the slab size and big stacks are written in bounded memory.  The
Poisson draw uses the superposition ``Poisson(bg + b) = Poisson(bg) + Poisson(b)``: the constant
background part comes from an exact inverse-CDF table (fast), the blob part from numpy.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy.special import gammaln

from caredask.errors import InputError

__all__ = ["synthetic_pair", "write_tiff_pairs"]

BACKGROUND = 100.0
TARGET_NOISE = 3.0
GAIN = 8.0
SOURCE_NOISE = 30.0
SOURCE_OFFSET = 50.0
# sparse blob densities (blobs per pixel / voxel), tuned for ~33 % eligible centres
_DENSITY = {2: 9.5e-5, 3: 2.7e-5}
_DENSE_FACTOR = 14
_SLAB_BYTES = 64 * 2**20  # float32 bytes of one rendered slab
_BOX = 4.0  # blobs are rendered within +-4 sigma
_STREAM_BLOBS, _STREAM_TARGET, _STREAM_SOURCE = 0, 1, 2
_U32 = 2**32


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shp = tuple(int(s) for s in shape)
    if len(shp) not in (2, 3) or min(shp) < 1:
        raise InputError(
            f"synthetic images must be 2D (Y, X) or 3D (Z, Y, X) with positive sizes, got "
            f"shape {tuple(shape)!r}; pass e.g. (512, 512) or (32, 256, 256)"
        )
    return shp


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}; pass e.g. seed=0")
    return int(seed)


def _blob_params(shape: tuple[int, ...], seed: int, dense: bool) -> dict[str, np.ndarray]:
    """Draw blob centres, sigmas (per axis of the 3D view) and amplitudes."""
    rng = np.random.default_rng([seed, _STREAM_BLOBS])
    n_vox = int(np.prod(shape))
    n = round(n_vox * _DENSITY[len(shape)] * (_DENSE_FACTOR if dense else 1))
    big = rng.random(n) < 0.1
    sxy = np.where(big, rng.uniform(6.0, 14.0, n), rng.uniform(1.5, 4.0, n))
    amp = np.where(big, rng.uniform(150.0, 800.0, n), rng.uniform(400.0, 4000.0, n))
    centre = rng.random((n, len(shape))) * np.asarray(shape, dtype=np.float64)
    if len(shape) == 2:
        centre = np.concatenate([np.zeros((n, 1)), centre], axis=1)
        sz = np.full(n, np.inf)
    else:
        sz = sxy / 2.0
    sigma = np.stack([sz, sxy, sxy], axis=1)
    shape3 = np.asarray(_as3d(shape), dtype=np.int64)
    lo = np.clip(np.floor(centre - _BOX * sigma), 0, shape3).astype(np.int64)
    hi = np.clip(np.ceil(centre + _BOX * sigma) + 1, 0, shape3).astype(np.int64)
    if len(shape) == 2:
        lo[:, 0], hi[:, 0] = 0, 1
    return {"centre": centre, "sigma": sigma, "amp": amp, "lo": lo, "hi": hi}


def _as3d(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return (1, *shape) if len(shape) == 2 else (shape[0], shape[1], shape[2])


def _profile(lo: int, hi: int, centre: float, sigma: float) -> np.ndarray:
    """Gaussian profile over the blob's full (clipped) box on one axis, float32."""
    if not np.isfinite(sigma):
        return np.ones(hi - lo, dtype=np.float32)
    t = (np.arange(lo, hi, dtype=np.float64) - centre) / sigma
    return np.exp(-0.5 * t * t).astype(np.float32)


def _render_blobs(blobs: dict[str, np.ndarray], shape3: tuple[int, ...], z0: int, z1: int) -> Any:
    """Sum of all blobs on planes ``z0:z1`` (float32, without background).

    Profiles are computed over each blob's whole box and then sliced, and blobs are added in
    index order, so every voxel gets bit-identical values whatever the slab decomposition.
    """
    out = np.zeros((z1 - z0, shape3[1], shape3[2]), dtype=np.float32)
    lo, hi = blobs["lo"], blobs["hi"]
    for i in np.flatnonzero((lo[:, 0] < z1) & (hi[:, 0] > z0)):
        c, s, (l0, l1, l2), (h0, h1, h2) = blobs["centre"][i], blobs["sigma"][i], lo[i], hi[i]
        gz = _profile(l0, h0, c[0], s[0]) * np.float32(blobs["amp"][i])
        a, b = max(l0, z0), min(h0, z1)
        gyx = _profile(l1, h1, c[1], s[1])[:, None] * _profile(l2, h2, c[2], s[2])[None, :]
        out[a - z0 : b - z0, l1:h1, l2:h2] += gz[a - l0 : b - l0, None, None] * gyx
    return out


@functools.lru_cache(maxsize=8)
def _poisson_table(lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-CDF table of Poisson(lam) on 32-bit uniforms, with a 2**16-bucket guide."""
    k = np.arange(int(lam + 20 * np.sqrt(lam) + 40), dtype=np.float64)
    cdf = np.cumsum(np.exp(k * np.log(lam) - lam - gammaln(k + 1)))
    thr = np.ceil(cdf * _U32).astype(np.uint64)
    thr = thr[thr < _U32]
    starts = np.arange(2**16, dtype=np.uint64) << np.uint64(16)
    base = np.searchsorted(thr, starts, side="right")
    count = np.searchsorted(thr, starts + np.uint64(0xFFFF), side="right") - base
    nxt = np.where(count == 0, np.uint64(_U32 - 1), thr[np.minimum(base, thr.size - 1)])
    multi = count > 1
    multi[-1] = True  # u == 2**32 - 1 must not be caught by the count == 0 sentinel
    return thr, base.astype(np.int32), nxt.astype(np.uint32), multi


def _poisson_const(rng: np.random.Generator, lam: float, n: int) -> np.ndarray:
    """``n`` exact (to 2**-32 in probability) Poisson(lam) draws, int32."""
    thr, base, nxt, multi = _poisson_table(lam)
    u = rng.integers(0, _U32, size=n, dtype=np.uint32)
    bucket = u >> np.uint32(16)
    k = base[bucket] + (u >= nxt[bucket])
    fix = np.flatnonzero(multi[bucket])
    k[fix] = np.searchsorted(thr, u[fix].astype(np.uint64), side="right")
    return k.astype(np.int32, copy=False)


def _to_uint16(a: np.ndarray) -> np.ndarray:
    """Round, clip to [0, 65535] and cast a float32 array (modified in place)."""
    np.rint(a, out=a)
    np.clip(a, 0, 65535, out=a)
    return a.astype(np.uint16)


def _normal(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= np.float32(sigma)
    return noise


def _target_plane(blob_plane: np.ndarray, seed: int, z: int) -> np.ndarray:
    rng = np.random.default_rng([seed, _STREAM_TARGET, z])
    out = _normal(rng, blob_plane.shape, TARGET_NOISE)
    out += blob_plane
    out += np.float32(BACKGROUND)
    return _to_uint16(out)


def _source_plane(blob_plane: np.ndarray, seed: int, z: int) -> np.ndarray:
    rng = np.random.default_rng([seed, _STREAM_SOURCE, z])
    counts = _poisson_const(rng, BACKGROUND / GAIN, blob_plane.size).reshape(blob_plane.shape)
    idx = np.flatnonzero(blob_plane > 0)
    counts.ravel()[idx] += rng.poisson(blob_plane.ravel()[idx] / GAIN).astype(np.int32)
    out = counts.astype(np.float32)
    out *= np.float32(GAIN)
    out += _normal(rng, blob_plane.shape, SOURCE_NOISE)
    out += np.float32(SOURCE_OFFSET)
    return _to_uint16(out)


_PLANE_FUNCS = {"source": _source_plane, "target": _target_plane}


def _slab_planes(shape3: tuple[int, ...]) -> int:
    return max(1, min(shape3[0], _SLAB_BYTES // (4 * shape3[1] * shape3[2])))


def _iter_slabs(
    shape: tuple[int, ...], seed: int, dense: bool, kinds: tuple[str, ...]
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield, slab by slab along Z, one uint16 ``(planes, Y, X)`` array per requested kind."""
    shape3 = _as3d(shape)
    blobs = _blob_params(shape, seed, dense)
    step = _slab_planes(shape3)
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for z0 in range(0, shape3[0], step):
            z1 = min(z0 + step, shape3[0])
            slab = _render_blobs(blobs, shape3, z0, z1)
            zs = range(z0, z1)
            yield tuple(
                np.stack(list(pool.map(_PLANE_FUNCS[kind], slab, [seed] * len(zs), zs)))
                for kind in kinds
            )


def synthetic_pair(
    shape: tuple[int, ...], *, seed: int, dense: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one deterministic CARE-like ``(source, target)`` pair.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    seed : int
        Non-negative seed; the same seed and shape always give the same arrays.
    dense : bool, optional
        Use 14x more blobs (about 98 % of patch centres eligible instead of about 33 %).

    Returns
    -------
    source, target : numpy.ndarray
        uint16 arrays of ``shape``: the noisy low-SNR image and the clean high-SNR image.

    Raises
    ------
    InputError
        If ``shape`` is not 2D/3D with positive sizes or ``seed`` is not a non-negative int.
    """
    shp, sd = _check_shape(shape), _check_seed(seed)
    source = np.empty(_as3d(shp), dtype=np.uint16)
    target = np.empty_like(source)
    z = 0
    for src, tgt in _iter_slabs(shp, sd, dense, ("source", "target")):
        source[z : z + len(src)], target[z : z + len(src)] = src, tgt
        z += len(src)
    return source.reshape(shp), target.reshape(shp)


def _write_one(
    path: Path, shape: tuple[int, ...], seed: int, dense: bool, kind: str, options: dict[str, Any]
) -> None:
    pages = (plane for (slab,) in _iter_slabs(shape, seed, dense, (kind,)) for plane in slab)
    tifffile.imwrite(path, data=pages, shape=shape, dtype=np.uint16, **options)


def _check_tiff_args(
    n_images: int, shp: tuple[int, ...], axes: str | None, folder: str | os.PathLike[str]
) -> str:
    """The axes of :func:`write_tiff_pairs` (default ``'YX'``/``'ZYX'``), arguments checked."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise InputError(f"n_images must be a positive int, got {n_images!r}; pass e.g. 4")
    axes = axes or ("YX" if len(shp) == 2 else "ZYX")
    if len(axes) != len(shp):
        raise InputError(
            f"axes {axes!r} do not match shape {shp} for the synthetic TIFFs in {folder}; "
            f"give one letter per dimension, e.g. {'YX' if len(shp) == 2 else 'ZYX'!r}"
        )
    return axes


# Over 60 lines only by its numpydoc (12 parameters); the body is about 20 lines.
def write_tiff_pairs(
    folder: str | os.PathLike[str],
    n_images: int,
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    dense: bool = False,
    source_dir: str = "low",
    target_dir: str = "GT",
    bigtiff: bool | None = None,
    compression: str | None = None,
    imagej: bool = True,
    axes: str | None = None,
) -> list[Path]:
    """Write ``n_images`` synthetic pairs as uint16 TIFFs, streaming Z planes (bounded memory).

    Image ``i`` is ``synthetic_pair(shape, seed=seed + i, dense=dense)``; its source goes to
    ``folder/source_dir/img_{i:03d}.tif`` and its target to ``folder/target_dir/img_{i:03d}.tif``.
    Memory use stays around 64 MiB of float32 per slab plus a few planes, whatever the stack size.

    Parameters
    ----------
    folder : str or os.PathLike
        Base folder; created with the two sub-folders if needed.  Existing files are overwritten.
    n_images : int
        Number of pairs (>= 1).
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    seed : int, optional
        Seed of the first image.
    dense : bool, optional
        Dense foreground variant (see :func:`synthetic_pair`).
    source_dir, target_dir : str, optional
        Sub-folder names of the sources and targets.
    bigtiff : bool or None, optional
        Passed to :func:`tifffile.imwrite` (None: tifffile decides).
    compression : str or None, optional
        TIFF compression, e.g. ``'zlib'`` (None: uncompressed).
    imagej : bool, optional
        Write ImageJ hyperstack metadata (default) instead of tifffile's shaped metadata.
    axes : str or None, optional
        Axes metadata; default ``'YX'`` or ``'ZYX'``.

    Returns
    -------
    list of pathlib.Path
        The source files, in image order (each target has the same name in ``target_dir``).

    Raises
    ------
    InputError
        On an invalid shape, seed, image count or axes string.
    """
    shp, sd = _check_shape(shape), _check_seed(seed)
    axes = _check_tiff_args(n_images, shp, axes, folder)
    base = Path(folder)
    dirs = {"source": base / source_dir, "target": base / target_dir}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"compression": compression, "imagej": imagej}
    options |= {"metadata": {"axes": axes}} | ({} if bigtiff is None else {"bigtiff": bigtiff})
    sources = []
    for i in range(n_images):
        name = f"img_{i:03d}.tif"
        for kind, d in dirs.items():
            _write_one(d / name, shp, sd + i, dense, kind, options)
        sources.append(dirs["source"] / name)
    return sources
