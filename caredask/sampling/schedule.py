"""Several batches of a job in flight at once, as many as a memory budget allows.

Each batch runs its passes (statistics, mask, rank location, extraction) in a client thread;
the threads only wait on the scheduler, so while one batch is extracted the next batches'
statistics and masks run, and workers never idle on a client-side barrier.  The number of
batches in flight is set by the memory budget: each batch is admitted with an estimate of the
memory it holds on the workers (its bit-packed mask, its patches, the chunks its tasks decode),
and at least one batch always runs.  The same code serves the local schedulers and
``distributed`` (whose client is thread-safe).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import dask
import dask.local
import dask.multiprocessing
import dask.threaded
import numpy as np
from dask.utils import format_bytes, parse_bytes

from ..errors import InputError

if TYPE_CHECKING:
    from .progress import Progress

__all__ = [
    "InFlight",
    "LOCAL_SCHEDULERS",
    "batch_cost",
    "cluster_threads",
    "distributed_client",
    "max_batches",
    "resolve_budget",
    "job_scheduler",
    "work_block_bytes",
    "WORKER_MALLOC_ENV",
    "worker_environment",
]

LOCAL_DEFAULT = 2 * 2**30
"""Default budget on a local scheduler: 2 GiB (less on machines with under 8 GiB)."""


def _total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def resolve_budget(budget: int | str | None, client: Any = None) -> int:
    """Bytes the job may hold in flight: given (``"4GiB"``, int) or a default.

    The default is 2 GiB (a quarter of the memory of smaller machines) locally, and half of
    the workers' summed ``memory_limit`` on a ``distributed`` cluster.
    """
    if budget is None or budget == "auto":
        if client is not None:
            limits = [int(w.get("memory_limit") or 0) for w in _workers(client)]
            if limits and all(limits):
                return max(sum(limits) // 2, 2**28)
        return min(LOCAL_DEFAULT, _total_memory() // 4)
    try:
        value = parse_bytes(budget) if isinstance(budget, str) else int(budget)
    except (ValueError, TypeError):
        value = -1
    if value <= 0:
        raise InputError(
            f"memory budget {budget!r} is not a positive size; give bytes or a size such as "
            "'2GiB' or '500MB'"
        )
    return int(value)


def _workers(client: Any) -> list[dict[str, Any]]:
    """What the scheduler knows of each worker (``nthreads``, ``memory_limit``, ...)."""
    return list(client.scheduler_info(n_workers=-1).get("workers", {}).values())


def distributed_client() -> Any:
    """The default ``distributed`` client if dask's scheduler is one, else None."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None
    try:
        return default_client()
    except ValueError:
        return None


MAX_WORK_BLOCK = 256 * 2**20
"""Largest work block on ``distributed``."""

WORK_BLOCK_SHARE = 16
"""A work block may take 1/16 of a worker thread's memory (its tasks hold a few copies)."""

WORK_BLOCK_PER_THREAD = 2 * 2**20
"""Work block bytes per thread of the cluster (what keeps a central scheduler ahead)."""

MIN_WORK_BLOCK = 64 * 2**20
"""Smallest work block on ``distributed``: each task also costs its worker a millisecond or two."""


def work_block_bytes(client: Any = None) -> int:
    """Bytes a work block may grow to from the loader's read unit (0: keep the read unit).

    A ``distributed`` scheduler hands out one task per millisecond or so of its CPU: with T
    threads, tasks must last well over T milliseconds to keep every thread busy, so blocks
    grow with the cluster, 2 MiB per thread (128 threads: 256 MiB blocks, 16 times fewer
    tasks than 16 MiB chunks), and are at least 64 MiB (a worker also spends a millisecond
    or two on each task), within 1/16 of the smallest worker's memory per thread (1 GiB per
    thread assumed when workers have no limit) and at most 256 MiB.  dask's local
    schedulers (well under a millisecond per task) keep the store's read unit: finest mask
    skipping and the most parallelism.
    """
    if client is None:
        return 0
    workers = _workers(client)
    threads = sum(max(1, int(w.get("nthreads") or 1)) for w in workers)
    per_thread = [
        int(w["memory_limit"]) // max(1, int(w.get("nthreads") or 1))
        for w in workers
        if w.get("memory_limit")
    ]
    memory = (min(per_thread) if per_thread else 2**30) // WORK_BLOCK_SHARE
    wanted = max(MIN_WORK_BLOCK, threads * WORK_BLOCK_PER_THREAD)
    return int(min(MAX_WORK_BLOCK, memory, wanted))


WORKER_MALLOC_ENV = {
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20),
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
}
"""glibc settings for caredask's worker processes.

``distributed``'s nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed memory goes back
to the OS at once; setting it also turns off glibc's adaptive mmap threshold, so every
temporary array of a chunk task is a fresh ``mmap`` whose pages the kernel zeroes and faults
in again.  With chunks of 8-32 MiB that doubled the workers' system time (measured: 2x1
LocalCluster on a 4 GiB job, 25 s of the workers' 49 s of CPU).  Keeping allocations up to
32 MiB on the heap and trimming it beyond 64 MiB cut the workers' CPU by a quarter
(``benchmarks/bench_scaling.py``).
"""


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    """Inside this block, worker processes a ``LocalCluster`` spawns get caredask's settings.

    For clusters started elsewhere, set the same in their dask configuration
    (``distributed.nanny.pre-spawn-environ``).
    """
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.update(WORKER_MALLOC_ENV)
    # distributed lets this process's environment override the configuration, and its
    # nannies copy their settings into it (so an earlier cluster's 65536 would win): set
    # both for the block (glibc reads them at process start, this process is unaffected).
    saved = {k: os.environ.get(k) for k in WORKER_MALLOC_ENV}
    os.environ.update(WORKER_MALLOC_ENV)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cluster_threads(client: Any = None) -> int:
    """Threads that run one computation: the cluster's, or the local scheduler's."""
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _chunk_bytes(a: Any) -> int:
    return math.prod(max(c) for c in a.chunks) * a.dtype.itemsize if a.size else 0


def batch_cost(
    arrays: Sequence[tuple[Any, Any]], k: int, patch_size: Sequence[int], threads: int
) -> int:
    """Estimated peak memory of one batch of image pairs ``(x, y)`` on the workers.

    The bit-packed mask (1 bit per voxel, kept until the ranks are located), the raw pieces and
    float32 patches of ``k`` patches per image, and the chunks decoded at once: three working
    copies of a source and a target chunk per thread, at most as many as the batch has.
    """
    voxels = sum(int(np.prod(y.shape)) for _, y in arrays)
    patch = int(np.prod(patch_size))
    pieces = sum(k * patch * (x.dtype.itemsize + y.dtype.itemsize + 8) for x, y in arrays)
    chunk = max(_chunk_bytes(x) + _chunk_bytes(y) for x, y in arrays)
    n_chunks = sum(x.npartitions + y.npartitions for x, y in arrays)
    return voxels // 8 + pieces + 3 * chunk * min(threads, n_chunks)


class InFlight:
    """Runs batches in client threads while their estimated costs fit in ``budget``.

    ``submit`` blocks until the batch fits (yielding finished results meanwhile); ``drain``
    yields the rest.  A failure cancels the remaining batches and is raised once the running
    ones have stopped (local schedulers stop at their next task).
    """

    def __init__(
        self, budget: int, max_batches: int, progress: Progress, wait_on_error: bool = True
    ) -> None:
        self.budget = int(budget)
        self.wait_on_error = wait_on_error
        self.pool = cf.ThreadPoolExecutor(max(1, max_batches), thread_name_prefix="caredask")
        self.max_batches = max(1, max_batches)
        self.running: dict[cf.Future[Any], int] = {}
        self.progress = progress

    def _used(self) -> int:
        return sum(self.running.values())

    def _finished(self, block: bool) -> Iterator[Any]:
        if not self.running:
            return
        done, _ = cf.wait(
            list(self.running), timeout=None if block else 0, return_when=cf.FIRST_COMPLETED
        )
        for fut in done:
            self.running.pop(fut)
            yield fut.result()

    def submit(self, cost: int, fn: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """Start ``fn(*args)`` once ``cost`` fits; yield results that finished meanwhile."""
        yield from self._finished(block=False)
        while self.running and (
            self._used() + cost > self.budget or len(self.running) >= self.max_batches
        ):
            yield from self._finished(block=True)
        self.running[self.pool.submit(fn, *args)] = cost

    def drain(self) -> Iterator[Any]:
        """Yield the results of every batch still running."""
        while self.running:
            yield from self._finished(block=True)

    def __enter__(self) -> InFlight:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.progress.cancel()
            for fut in self.running:
                fut.cancel()
        self.pool.shutdown(wait=exc_type is None or self.wait_on_error, cancel_futures=True)

    def describe(self) -> str:
        """``budget 2 GiB``, for messages."""
        return f"budget {format_bytes(self.budget)}"


def max_batches(client: Any, threads: int) -> int:
    """Batches in flight at most: 2 locally (one extracting while the next is read), more on a
    cluster so that every worker has tasks while batches wait on their round trips."""
    return 2 if client is None else max(2, threads)


LOCAL_SCHEDULERS = {
    "threads": "threads",
    "threading": "threads",
    "processes": "processes",
    "multiprocessing": "processes",
    "synchronous": "synchronous",
    "sync": "synchronous",
    "single-threaded": "synchronous",
}
"""Names of dask's local schedulers (and dask's aliases) -> the name caredask uses."""

_LOCAL: dict[str | None, str] = {None: "threads"}
_LOCAL.update(LOCAL_SCHEDULERS)


@contextlib.contextmanager
def job_scheduler(client: Any, threads: int, callbacks: Sequence[Any]) -> Iterator[bool]:
    """For the job, a local scheduler that carries ``callbacks`` on every computation.

    dask's global callbacks are swapped out while a local computation runs, so with several
    batches computing at once some would see none; here each computation gets them
    explicitly.  On the threaded scheduler every batch shares one pool of ``threads`` (dask
    otherwise gives each calling thread its own pool: batches x cores chunk tasks at once).
    Yields False (nothing installed) on ``distributed`` or a custom scheduler.
    """
    kind = _LOCAL.get(dask.config.get("scheduler", None), None)
    if client is not None or kind is None:
        yield False
        return
    cbs = list(callbacks)
    if kind == "synchronous":
        with dask.config.set(scheduler=partial(dask.local.get_sync, callbacks=cbs)):
            yield True
    elif kind == "processes":
        with dask.config.set(scheduler=partial(dask.multiprocessing.get, callbacks=cbs)):
            yield True
    else:
        with cf.ThreadPoolExecutor(threads, thread_name_prefix="caredask-dask") as pool:
            get = partial(dask.threaded.get, pool=pool, callbacks=cbs)
            with dask.config.set(scheduler=get):
                yield True
