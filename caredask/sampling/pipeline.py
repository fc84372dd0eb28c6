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

import contextlib
from collections.abc import Iterator
from typing import Any

import dask
import numpy as np

from ..errors import InputError
from ..masks.background import border_slices
from ..statistics.normalize import FixedRangeNormalization, PercentileNormalization
from .centres import choose_ranks
from .extract import GroupSpec, PatchNorm, group_tasks, plan_patches
from .items import Checker, Item, PatchJob, _draw_seed, compose_transforms, draw, pull_items
from .masking import count_valid, empty_region
from .masking import locate_centres as _locate_centres
from .progress import Monitor, Progress
from .schedule import (
    InFlight,
    batch_cost,
    cluster_threads,
    job_scheduler,
    max_batches,
    resolve_budget,
)
from .stats import batch_statistics, check_finite, read_whole

__all__ = [
    "Checker",
    "Item",
    "PatchJob",
    "batches",
    "compose_transforms",
    "count_valid",
    "draw",
    "pull_items",
    "run_pipeline",
]


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
        plan_patches(it.x, it.starts, job.patch_size, regions="source" not in it.held),
        plan_patches(it.y, it.starts, job.patch_size, regions="target" not in it.held),
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
    items: list[Item], job: PatchJob, channel: int | None, sink: Any, read_once: bool
) -> list[tuple[Item, list[Any]]]:
    """All passes of one batch (runs in a client thread); results per item.

    ``read_once``: what the statistics pass reads whole is read into memory (persisted) first,
    so that the statistics, mask and extraction passes decode each of its chunks once instead
    of up to three times (see :func:`read_once_bytes`).
    """
    lazy = [(it.x, it.y) for it in items]
    if read_once:
        wanted = [(it, role, a) for it in items for role, a in _read_whole(it, job).items()]
        for (it, role, _), a in zip(wanted, dask.persist(*[a for *_, a in wanted]), strict=True):
            if role == "source":
                it.x = a
            else:
                it.y = a
            it.held = it.held | {role}
    try:
        return _passes(items, job, channel, sink)
    finally:  # the pixels held in memory are released with the batch
        for it, (x, y) in zip(items, lazy, strict=True):
            it.x, it.y, it.held = x, y, frozenset()


def _passes(
    items: list[Item], job: PatchJob, channel: int | None, sink: Any
) -> list[tuple[Item, list[Any]]]:
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
        raise empty_region(it)
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


READ_ONCE_SHARE = 8
"""A batch is read into memory once when that takes at most 1/8 of the memory budget."""


def _read_whole(it: Item, job: PatchJob) -> dict[str, Any]:
    return read_whole((it.x, it.y, None, it.pairs), job.patch_filter, job.normalization)


def read_once_bytes(items: list[Item], job: PatchJob, budget: int) -> int:
    """Bytes a batch holds in memory if it is read once (0: it is read per pass).

    What the statistics pass reads whole (both images with percentile normalisation, the
    target for the background filter) is kept for the mask and extraction passes, which then
    cut from memory instead of decoding the target again and every touched chunk; worth it
    when it fits in 1/8 of the budget.  Larger batches are read per pass (bounded memory).
    """
    held = sum(a.nbytes for it in items for a in _read_whole(it, job).values())
    return int(held) if held <= budget // READ_ONCE_SHARE else 0


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


def _run_lazy(items: Iterator[Item], job: PatchJob, check: Checker, sink: Any, mon: Monitor) -> int:
    client, progress = mon.client, mon.progress
    budget = resolve_budget(job.memory_budget, client)
    threads = cluster_threads(client)
    n_done = 0
    cap = max_batches(client, threads)
    with (
        job_scheduler(client, threads, [mon.callback]) as installed,
        mon.global_fallback() if not installed and client is None else contextlib.nullcontext(),
        InFlight(budget, cap, progress, wait_on_error=client is None) as pool,
    ):

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
            held = read_once_bytes(todo, job, budget)
            for res in pool.submit(
                cost + held, _process_lazy, todo, job, check.channel, sink, held > 0
            ):
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
