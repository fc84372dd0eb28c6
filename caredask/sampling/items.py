"""The image pairs of a job as the pipeline sees them: pulled in csbdeep's order, checked.

Each pair is pulled from the raw data's generator, checked as csbdeep checks it (with messages
naming the image and the fix), wrapped as dask once, and given the random numbers csbdeep
draws for it (the seed of its centre draw and its percentile pairs) at the moment csbdeep
would draw them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import dask.array as da
import numpy as np

from ..axes import axes_check_and_normalize, axes_dict
from ..errors import AxesError, InputError
from ..loaders.base import coarsen
from ..masks.filters import BackgroundFilter
from ..statistics.normalize import FixedRangeNormalization, PercentileNormalization
from ..transforms import Transform, is_rng_free, permute_axes
from .progress import Progress
from .stats import ImageStats

__all__ = ["Checker", "Item", "PatchJob", "compose_transforms", "draw", "pull_items"]

UINT32_MAX = int(np.iinfo(np.uint32).max)


@dataclass
class Item:
    """One transformed image pair, with the random numbers drawn for it."""

    index: int
    name: str
    x: Any
    y: Any
    mask: Any
    target: str = ""
    seed: int | None = None
    pairs: np.ndarray | None = None
    starts: np.ndarray | None = None
    stats: ImageStats = field(default_factory=ImageStats)
    held: frozenset[str] = frozenset()  # "source"/"target" persisted: later passes cut from memory


@dataclass
class PatchJob:
    """Everything the pipeline needs besides the images."""

    patch_size: tuple[int, ...]
    k: int
    patch_filter: Any
    normalization: Any
    rng: np.random.RandomState
    batch_voxels: int = 2**27
    batch_images: int = 256
    memory_budget: int | str | None = None
    progress: Progress | None = None
    group_bytes: int = 32 * 2**20
    nonfinite: str = "raise"
    draw: bool = True  # draw each image's random numbers when it is pulled
    block_bytes: int = 0  # work blocks grown from the loader's read unit up to this (0: as read)

    @property
    def known(self) -> bool:
        """Filter and normalisation are caredask's own (or None): the lazy path applies."""
        return isinstance(self.patch_filter, BackgroundFilter | None) and isinstance(
            self.normalization, PercentileNormalization | FixedRangeNormalization | None
        )


def _as_dask(a: Any) -> da.Array:
    return a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks="auto")


def _work_blocks(a: da.Array, job: PatchJob) -> da.Array:
    """A loader's array in the job's work blocks (multiples of its read unit), if it has any."""
    return coarsen(a, job.block_bytes, job.patch_size) if job.block_bytes else a


def _draw_seed(job: PatchJob) -> int:
    """csbdeep's per-image ``randint`` that seeds Python's ``random`` for the centre draw."""
    return int(job.rng.randint(0, UINT32_MAX, dtype=np.uint32))


def draw(item: Item, job: PatchJob) -> None:
    """Draw the image's random numbers (centre seed, percentile pairs) in csbdeep's order."""
    item.seed = _draw_seed(job)
    if isinstance(job.normalization, PercentileNormalization):
        item.pairs = job.normalization.draw(job.k, job.rng)


def compose_transforms(
    transforms: Sequence[Transform] | None, patch_axes: str | None
) -> tuple[Callable[[Iterator[Any]], Iterator[Any]], int, bool]:
    """csbdeep's transform assembly: list order, ``permute_axes(patch_axes)`` last."""
    tfs = list(transforms or [])
    if patch_axes is not None:
        tfs.append(permute_axes(patch_axes))
    if not tfs:
        tfs = [Transform.identity()]
    n = int(np.prod([t.size for t in tfs]))
    rng_free = all(is_rng_free(t.generator) for t in tfs)

    def apply(it: Iterator[Any]) -> Iterator[Any]:
        return reduce(lambda g, t: t.generator(g), tfs, it)

    return apply, n, rng_free


class Checker:
    """csbdeep's per-image checks, with messages that name the image and the fix."""

    def __init__(self, patch_size: tuple[int, ...]) -> None:
        self.patch_size = patch_size
        self.axes: str | None = None
        self.channel: int | None = None

    def __call__(self, x: Any, y: Any, _axes: str, mask: Any, name: str) -> None:
        ps = self.patch_size
        if self.axes is None:
            try:
                self.axes = axes_check_and_normalize(_axes, len(ps))
            except AxesError as e:
                raise AxesError(
                    f"{name}: {e} (patch_size {ps} must have one entry per axis)"
                ) from e
            self.channel = axes_dict(self.axes)["C"]
        if axes_check_and_normalize(_axes) != self.axes:
            raise AxesError(f"{name}: not all images have the same axes ({_axes} vs {self.axes})")
        if x.shape != y.shape:
            raise InputError(f"{name}: source shape {x.shape} differs from target {y.shape}")
        if mask is not None and mask.shape != x.shape:
            raise InputError(f"{name}: mask shape {mask.shape} differs from image {x.shape}")
        ch = self.channel
        if ch is not None and ps[ch] != x.shape[ch]:
            raise InputError(
                f"{name}: extracted patches must contain all channels: patch_size[{ch}]="
                f"{ps[ch]} but the image has {x.shape[ch]} channels"
            )
        axes = self.axes or "?" * len(ps)
        bad = [
            f"{a} ({p} > {d})" if p > 0 else f"{a} ({p} is not positive)"
            for a, p, d in zip(axes, ps, x.shape, strict=True)
            if not 0 < p <= d
        ]
        if bad:
            raise InputError(
                f"{name}: patch_size {ps} negative or larger than data shape {x.shape} (axes "
                f"{axes}) along axis {', '.join(bad)}; use patches between 1 and the image "
                "size along every axis"
            )


def pull_items(
    pairs: Iterator[Any],
    n_images: int,
    names: Sequence[str],
    job: PatchJob,
    check: Checker,
    targets: Sequence[str] = (),
) -> Iterator[Item]:
    for i, (x, y, _axes, mask) in enumerate(pairs):
        if i >= n_images:
            warnings.warn(
                f"more raw images (or transformations thereof) than expected ({n_images}), "
                "skipping excess images.",
                stacklevel=3,
            )
            return
        name = names[i % len(names)] if names else f"image {i}"
        check(x, y, _axes, mask, name)
        target = targets[i % len(targets)] if targets else f"the target of {name}"
        item = Item(i, name, x, y, mask, target)
        if job.known:  # lazy path: wrap numpy images once (tokenising them is a full pass)
            item.x, item.y = _work_blocks(_as_dask(x), job), _work_blocks(_as_dask(y), job)
            item.mask = None if mask is None else _as_dask(mask)
            if job.draw:
                draw(item, job)
        yield item
