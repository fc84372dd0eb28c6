"""The patch pipeline: csbdeep's ``create_patches`` algorithm, lazily, batches in flight.

Per batch of image pairs (pulled from the generator in csbdeep's order, random numbers drawn
at each pull exactly as csbdeep draws them):

1. one pass of exact order statistics gives every filter threshold and normalisation
   percentile (:mod:`caredask.sampling.stats`);
2. one blockwise pass builds the eligibility mask, bit-packed and kept (persisted), and counts
   eligible centres per line;
3. csbdeep's C-order ranks are drawn and located from those counts;
4. one task per touched chunk cuts the pieces, and one task per group of patches assembles,
   normalises and writes them (:mod:`caredask.sampling.extract`).

Several batches are in flight at once, as many as the memory budget allows
(:mod:`caredask.sampling.schedule`).  Custom (non-caredask) filter or normalisation callables
get whole images in memory, exactly as in csbdeep, one image at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize

from ..axes import axes_check_and_normalize, axes_dict
from ..errors import AxesError, EmptyRegionError, InputError
from ..masks.background import (
    border_slices,
    dilate_above_mask,
    erode_pixel_mask,
    filter_size,
    packed_line_counts,
    packed_mask,
)
from ..masks.filters import BackgroundFilter
from ..masks.skip import drop_dead_blocks, live_blocks, reads_of
from ..statistics.normalize import (
    FixedRangeNormalization,
    PercentileNormalization,
)
from ..transforms import Transform, is_rng_free, permute_axes
from .centres import choose_ranks, locate_ranks, ranks_to_centres_dense
from .extract import GroupSpec, PatchNorm, group_tasks, plan_patches
from .progress import Monitor, Progress
from .schedule import InFlight, batch_cost, cluster_threads, resolve_budget
from .stats import ImageStats, batch_statistics, check_finite

__all__ = [
    "Checker",
    "Item",
    "PatchJob",
    "compose_transforms",
    "count_valid",
    "draw",
    "pull_items",
    "run_pipeline",
]

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

    @property
    def known(self) -> bool:
        """Filter and normalisation are caredask's own (or None): the lazy path applies."""
        return isinstance(self.patch_filter, BackgroundFilter | None) and isinstance(
            self.normalization, PercentileNormalization | FixedRangeNormalization | None
        )


def _as_dask(a: Any) -> da.Array:
    return a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks="auto")


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
        if not all(0 < p <= d for p, d in zip(ps, x.shape, strict=True)):
            raise InputError(
                f"{name}: patch_size {ps} negative or larger than data shape {x.shape} along "
                "some dimensions; use smaller patches"
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
            item.x, item.y = _as_dask(x), _as_dask(y)
            item.mask = None if mask is None else _as_dask(mask)
            if job.draw:
                draw(item, job)
        yield item


def _mask_graph(item: Item, job: PatchJob, thr: Any) -> da.Array | None:
    y = item.y
    ps = job.patch_size
    if job.patch_filter is None and item.mask is None:
        return None
    if job.patch_filter is None:
        m = da.ones(y.shape, dtype=bool, chunks=y.chunks)
    else:
        y = _for_stencil(y, tuple(p // 2 for p in ps))
        m = dilate_above_mask(y, thr, ps)
    if item.mask is not None:
        mk = item.mask.rechunk(m.chunks)
        m = m & erode_pixel_mask(_for_stencil(mk, tuple(p // 2 for p in ps)).rechunk(m.chunks), ps)
    return m[border_slices(y.shape, ps)]


def stencil_chunks(
    chunks: tuple[tuple[int, ...], ...], depth: Sequence[int]
) -> tuple[tuple[int, ...], ...] | None:
    """Merge chunks along axes where they are thinner than 4 halos (``None``: keep them).

    Only merging (whole neighbouring chunks concatenated): a split-and-merge rechunk could hold
    many source chunks in memory at once.
    """
    out = []
    changed = False
    for c, d in zip(chunks, depth, strict=True):
        want = 4 * d
        if d == 0 or len(c) == 1 or min(c[:-1] or c) >= want:
            out.append(c)
            continue
        merged, acc = [], 0
        for size in c:
            acc += size
            if acc >= want:
                merged.append(acc)
                acc = 0
        if acc:
            if merged:
                merged[-1] += acc
            else:
                merged.append(acc)
        out.append(tuple(merged))
        changed = True
    return tuple(out) if changed else None


def _for_stencil(a: da.Array, depth: Sequence[int]) -> da.Array:
    chunks = stencil_chunks(a.chunks, depth)
    a = a if chunks is None else a.rechunk(chunks)
    # map_overlap needs every chunk at least as large as the halo (short last chunks).
    fixed = tuple(
        ensure_minimum_chunksize(max(d, 1), c) if len(c) > 1 else c
        for d, c in zip(depth, a.chunks, strict=True)
    )
    return a if fixed == a.chunks else a.rechunk(fixed)


def _live_packed(it: Item, m: da.Array, job: PatchJob) -> da.Array:
    """The bit-packed mask, blocks that cannot hold a centre skipped (see masks.skip)."""
    packed = packed_mask(m)
    st = it.stats
    if st.block_max is None or st.threshold is None:
        return packed
    offset = [p // 2 for p in job.patch_size]
    depth = [h // 2 for h in filter_size(job.patch_size)]
    live = live_blocks(m.chunks, offset, depth, it.y.chunks, st.block_max, st.threshold)
    packed = drop_dead_blocks(packed, live)
    st.mask_reread = reads_of(packed, it.y) / max(it.y.npartitions, 1)
    return packed


def _empty_region(item: Item) -> EmptyRegionError:
    bad = item.stats.nonfinite.get("target", 0)
    why = (
        f"its target {item.target} holds {bad} non-finite values (NaN or infinity), so the "
        "filter threshold is NaN - replace them"
        if bad
        else "the target may be empty or constant - check the image, lower the filter "
        "threshold, pass patch_filter=None, or skip such images with on_empty='skip'"
    )
    return EmptyRegionError(
        f"{item.name}: 'patch_filter' didn't return any region to sample from; {why}"
    )


def count_valid(items: list[Item], job: PatchJob) -> list[int]:
    """Eligible patch centres of each item (thresholds in ``item.stats``), counted blockwise."""
    out: list[Any] = []
    for it in items:
        m = _mask_graph(it, job, it.stats.threshold)
        if m is None:
            out.append(
                int(np.prod([s.stop - s.start for s in border_slices(it.y.shape, job.patch_size)]))
            )
        else:
            out.append(packed_line_counts(_live_packed(it, m, job)).sum())
    return [int(v) for v in dask.compute(*out)]


def _locate_centres(items: list[Item], job: PatchJob) -> None:
    assert all(it.seed is not None for it in items)
    ps = job.patch_size
    masks = [_mask_graph(it, job, it.stats.threshold) for it in items]
    packed = [_live_packed(it, m, job) for it, m in zip(items, masks, strict=True) if m is not None]
    packed = list(dask.persist(*packed)) if packed else []
    counts = dask.compute(*[packed_line_counts(p) for p in packed]) if packed else ()
    j = 0
    for it, m in zip(items, masks, strict=True):
        border = border_slices(it.y.shape, ps)
        start = [s.start for s in border]
        if m is None:
            bshape = [s.stop - s.start for s in border]
            n_valid = int(np.prod(bshape))
            it.starts = ranks_to_centres_dense(
                choose_ranks(int(it.seed or 0), n_valid, job.k), bshape, start
            )
        else:
            c = counts[j]
            n_valid = int(c.sum())
            if n_valid == 0:
                raise _empty_region(it)
            ranks = choose_ranks(int(it.seed or 0), n_valid, job.k)
            it.starts = locate_ranks(ranks, c, packed[j], m.chunks[-1], start)
            j += 1
        it.starts = it.starts - np.array([p // 2 for p in ps], dtype=np.int64)


def _norm_of(it: Item, job: PatchJob, lo: int, hi: int) -> PatchNorm:
    if isinstance(job.normalization, FixedRangeNormalization):
        return PatchNorm(fixed=job.normalization)
    st = it.stats
    if st.x_lo is None:
        return PatchNorm()
    rows = slice(lo, hi)
    return PatchNorm(st.x_lo[rows], st.x_hi[rows], st.y_lo[rows], st.y_hi[rows])  # type: ignore[index]


def _finish_tasks(it: Item, job: PatchJob, channel: int | None, sink: Any) -> list[Any]:
    """Delayed tasks that cut, normalise and deliver the patches of one item."""
    assert it.starts is not None
    px, py = (
        plan_patches(it.x, it.starts, job.patch_size),
        plan_patches(it.y, it.starts, job.patch_size),
    )
    rows, target, target_id = sink.target(it)
    group = max(1, job.group_bytes // (8 * int(np.prod(job.patch_size))))

    def spec(lo: int, hi: int, xd: list[Any], yd: list[Any]) -> GroupSpec:
        return GroupSpec(
            lo,
            hi,
            px.shape,
            px.dtype,
            py.dtype,
            xd,
            yd,
            _norm_of(it, job, lo, hi),
            channel,
            None if rows is None else rows[lo:hi],
            target,
            target_id,
        )

    return group_tasks(px, py, group, spec)


def _process_lazy(
    items: list[Item], job: PatchJob, channel: int | None, sink: Any
) -> list[tuple[Item, list[Any]]]:
    """All passes of one batch (runs in a client thread); results per item."""
    stats = batch_statistics(
        [(it.x, it.y, channel, it.pairs) for it in items],
        job.patch_filter,
        job.normalization,
    )
    for it, st in zip(items, stats, strict=True):
        it.stats = st
        check_finite(it.name, it.target, st, job.nonfinite)
    _locate_centres(items, job)
    tasks = [_finish_tasks(it, job, channel, sink) for it in items]
    results = dask.compute(*tasks)
    return list(zip(items, [list(r) for r in results], strict=True))


def _process_eager(it: Item, job: PatchJob, channel: int | None) -> tuple[np.ndarray, np.ndarray]:
    """csbdeep's order for custom callables: filter, draw, sample, normalise, in memory."""
    from scipy.ndimage import minimum_filter

    x, y = np.asarray(it.x), np.asarray(it.y)
    ps = job.patch_size
    m = np.ones(y.shape, bool) if job.patch_filter is None else job.patch_filter((y, x), ps)
    if it.mask is not None:
        m = m & minimum_filter(np.asarray(it.mask), ps, mode="constant", cval=False)
    border = border_slices(y.shape, ps)
    valid = np.flatnonzero(m[border])
    if len(valid) == 0:
        raise _empty_region(it)
    it.seed = _draw_seed(job)
    ranks = choose_ranks(int(it.seed or 0), len(valid), job.k)
    centres = np.stack(np.unravel_index(valid[ranks], m[border].shape), axis=-1)
    it.starts = centres + np.array([s.start - p // 2 for s, p in zip(border, ps, strict=True)])
    sl = [tuple(slice(int(a), int(a) + p) for a, p in zip(s, ps, strict=True)) for s in it.starts]
    px, py = np.stack([x[s] for s in sl]), np.stack([y[s] for s in sl])
    norm = job.normalization
    if norm is None:
        return px.astype(np.float32), py.astype(np.float32)
    if isinstance(norm, PercentileNormalization):
        return norm(px, py, x, y, it.mask, channel, rng=job.rng)
    return norm(px, py, x, y, it.mask, channel)


def batches(items: Iterator[Item], job: PatchJob) -> Iterator[list[Item]]:
    batch: list[Item] = []
    voxels = 0
    for it in items:
        batch.append(it)
        voxels += int(np.prod(it.y.shape))
        if not job.known or voxels >= job.batch_voxels or len(batch) >= job.batch_images:
            yield batch
            batch, voxels = [], 0
    if batch:
        yield batch


def _estimate(items: list[Item], k: int) -> int:
    """Chunk tasks of the whole job: two statistics and one mask pass, extraction."""
    n = 0
    for it in items:
        parts = it.x.npartitions + it.y.npartitions
        n += 2 * parts + min(2 * k, parts)
    return n


def _run_lazy(items: Iterator[Item], job: PatchJob, check: Checker, sink: Any, mon: Monitor) -> int:
    client, progress = mon.client, mon.progress
    budget = resolve_budget(job.memory_budget, client)
    threads = cluster_threads(client)
    n_done = 0
    with InFlight(budget, max(2, 2 * threads), progress, wait_on_error=client is None) as pool:

        def accept(results: list[tuple[Item, list[Any]]]) -> None:
            nonlocal n_done
            for it, out in results:
                sink.accept(it, out)
                progress.image_done()
                n_done += 1

        for batch in batches(items, job):
            todo = [it for it in batch if it.index not in sink.skip]
            n_done += len(batch) - len(todo)
            if not todo:
                continue
            cost = batch_cost([(it.x, it.y) for it in todo], job.k, job.patch_size, threads)
            for res in pool.submit(cost, _process_lazy, todo, job, check.channel, sink):
                accept(res)
        for res in pool.drain():
            accept(res)
    return n_done


def run_pipeline(
    items: Iterator[Item],
    job: PatchJob,
    check: Checker,
    sink: Any,
) -> int:
    """Process pulled items (see :func:`pull_items`); hand each finished item to ``sink``.

    ``sink`` provides ``target(item)`` (where the finishing tasks write, if anywhere),
    ``accept(item, results)`` and ``skip`` (indices already done, when resuming).  Returns the
    number of images processed (or skipped as done).
    """
    progress = job.progress or Progress(0, enabled=False)
    if job.known:
        with Monitor(progress) as mon:
            n_done = _run_lazy(items, job, check, sink, mon)
    else:
        n_done = 0
        for it in items:
            sink.accept_eager(it, _process_eager(it, job, check.channel))
            progress.image_done()
            n_done += 1
    if n_done == 0 or check.axes is None:
        raise InputError("no images to sample patches from: the raw data yielded no image pairs")
    return n_done
