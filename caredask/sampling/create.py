"""``create_patches`` with csbdeep's signature and exact output, and caredask's native API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..masks.filters import BackgroundFilter, no_background_patches
from ..statistics.normalize import PercentileNormalization, sample_percentiles
from ..transforms import Transform
from ..writers.paths import check_output_path
from .output import finish_output, open_sink, output_axes
from .pipeline import Checker, PatchJob, run_pipeline
from .planning import (
    Plan,
    check_choice,
    check_count,
    job_record,
    keep_or_abort,
    plan_job,
    state_token,
)
from .progress import Progress
from .schedule import distributed_client, work_block_bytes
from .screen import ON_EMPTY
from .sinks import ZarrSink
from .stats import NONFINITE_POLICIES

__all__ = ["create_patches", "generate_training_data"]

# csbdeep's defaults, built without its import-time validation draws (those happen when
# ``caredask.csbdeep`` is imported, as with ``csbdeep.data``).
_DEFAULT_NORMALIZATION = PercentileNormalization(sample_percentiles())
_DEFAULT_FILTER = no_background_patches()


def _job(
    patch_size: Sequence[int],
    n_patches_per_image: int,
    patch_filter: Any,
    normalization: Any,
    rng: np.random.RandomState,
    memory_budget: int | str | None,
    nonfinite: str,
    on_empty: str,
) -> PatchJob:
    """The job's parameters, checked (before any image is opened)."""
    check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
    check_choice("on_empty", on_empty, ON_EMPTY)
    k = int(n_patches_per_image)
    if k <= 0:
        raise InputError(f"n_patches_per_image={n_patches_per_image} must be a positive integer")
    ps = tuple(int(p) for p in patch_size)
    job = PatchJob(ps, k, patch_filter, normalization, rng, memory_budget=memory_budget)
    job.nonfinite, job.draw = nonfinite, on_empty != "skip"
    job.block_bytes = work_block_bytes(distributed_client())
    return job


def _attach_progress(plan: Plan, job: PatchJob, progress: Progress | None, verbose: bool) -> None:
    """The job reports to ``progress`` (a new bar unless given), sized by the plan."""
    estimate = (
        sum(2 * (it.x.npartitions + it.y.npartitions) for it in plan.items) if plan.planned else 0
    )
    if progress is None:
        progress = Progress(plan.n_images, estimate, enabled=verbose)
    else:
        progress.n_images, progress.estimate = plan.n_images, estimate
    job.progress = progress


def _execute(plan: Plan, job: PatchJob, check: Checker, sink: Any) -> None:
    """Run the pipeline into ``sink``; an interrupted ``.zarr`` job is kept for resuming."""
    assert job.progress is not None
    try:
        check_count(run_pipeline(iter(plan.items), job, check, sink), plan.n_images)
    except BaseException as e:
        if isinstance(sink, ZarrSink):
            keep_or_abort(sink, plan.n_images, e)
        raise
    finally:
        job.progress.close()


def _provenance(
    plan: Plan, job: PatchJob, axes: str, shuffle: bool, seed_record: Any
) -> dict[str, Any]:
    """What the job was, for the output's provenance record."""
    return {
        "sources": plan.names,
        "axes": axes,
        "patch_size": list(job.patch_size),
        "n_patches_per_image": job.k,
        "shuffle": bool(shuffle),
        "caredask_version": __version__,
        "seed": seed_record,
        "skipped": [it.name for it in plan.skipped],
    }


# Over 60 lines only by its signature: the keywords both public entry points pass through.
def _run(
    raw_data: Any,
    patch_size: Sequence[int],
    n_patches_per_image: int,
    *,
    patch_axes: str | None,
    save_file: Any,
    transforms: Sequence[Transform] | None,
    patch_filter: Any,
    normalization: Any,
    shuffle: bool,
    verbose: bool,
    rng: np.random.RandomState,
    overwrite: bool,
    seed_record: Any,
    memory_budget: int | str | None = None,
    progress: Progress | None = None,
    resume: bool = True,
    nonfinite: str = "raise",
    on_empty: str = "raise",
    summary: dict[str, Any] | None = None,
) -> tuple[Any, Any, str]:
    if save_file is not None:  # refuse a bad output before any work (same rule for all kinds)
        check_output_path(save_file, overwrite)
    job = _job(
        patch_size, n_patches_per_image, patch_filter, normalization, rng, memory_budget,
        nonfinite, on_empty,
    )  # fmt: skip
    rng_state = state_token(rng)
    check = Checker(job.patch_size)
    plan = plan_job(raw_data, job, check, transforms, patch_axes, shuffle, on_empty, verbose)
    _attach_progress(plan, job, progress, verbose)
    ps, k, items = job.patch_size, job.k, plan.items
    sink = open_sink(
        plan,
        job,
        check,
        save_file,
        overwrite,
        resume,
        lambda: job_record(items, plan.names, ps, k, job, shuffle, seed_record, rng_state),
    )
    _execute(plan, job, check, sink)
    assert check.axes is not None
    perm = plan.perm if plan.planned else (rng.permutation(plan.n_total) if shuffle else None)
    record = _provenance(plan, job, check.axes, shuffle, seed_record)
    if summary is not None:
        summary.update(
            images=plan.n_images,
            patches=plan.n_total,
            skipped=record["skipped"],
            resumed=getattr(sink, "resumed", 0),
        )
    return finish_output(
        sink,
        None if plan.planned else perm,
        check.channel,
        output_axes(check.axes),
        save_file,
        record,
        overwrite,
        verbose,
    )


def create_patches(
    raw_data: Any,
    patch_size: Sequence[int],
    n_patches_per_image: int,
    patch_axes: str | None = None,
    save_file: str | Path | None = None,
    transforms: Sequence[Transform] | None = None,
    patch_filter: Any = _DEFAULT_FILTER,
    normalization: Any = _DEFAULT_NORMALIZATION,
    shuffle: bool = True,
    verbose: bool = True,
) -> tuple[Any, Any, str]:
    """Normalised training patches, bit-identical to csbdeep 0.8.2's ``create_patches``.

    Same signature, defaults and use of numpy's global random state as csbdeep: for the same
    ``np.random.seed``, ``X``, ``Y``, ``axes`` and the random state afterwards are identical.
    Images are read lazily and in chunks; statistics and masks are computed blockwise.

    Parameters
    ----------
    raw_data : RawData
        Image pairs (``RawData.from_folder``, ``from_arrays``, ``from_sources`` or your own).
    patch_size : sequence of int
        Patch size, one entry per axis of the (transformed) images.
    n_patches_per_image : int
        Patches sampled from each image.
    patch_axes : str, optional
        Axes of the patches (appended as a ``permute_axes`` transform).
    save_file : str or Path, optional
        ``*.npz`` (csbdeep's format) or ``*.zarr`` (a Zarr v3 store the patches stream into;
        ``X`` and ``Y`` are then returned as dask arrays reading from it).
    transforms : sequence of Transform, optional
        Applied in order to each image pair.
    patch_filter : callable or None
        Default :func:`no_background_patches`; ``None`` samples everywhere.
    normalization : callable or None
        Default :func:`norm_percentiles`; ``None`` keeps raw values (as float32).
    shuffle : bool
        Shuffle the patches (numpy's global random state).
    verbose : bool
        Print a summary and a progress bar.

    Returns
    -------
    X, Y : ndarray
        ``float32`` arrays of shape ``(n_images * n_patches_per_image, C, ...)``.
    axes : str
        ``'SC' + axes without 'C'``.
    """
    # csbdeep's own random state, and csbdeep overwrites existing files.
    return generate_training_data(
        raw_data,
        patch_size,
        n_patches_per_image,
        seed=np.random.mtrand._rand,
        patch_axes=patch_axes,
        save_file=save_file,
        transforms=transforms,
        patch_filter=patch_filter,
        normalization=normalization,
        shuffle=shuffle,
        overwrite=True,
        verbose=verbose,
        nonfinite="warn",  # csbdeep makes NaN patches silently; the drop-in says so
    )


def generate_training_data(
    raw_data: Any,
    patch_size: Sequence[int],
    n_patches_per_image: int,
    *,
    seed: int | np.random.RandomState,
    patch_axes: str | None = None,
    save_file: str | Path | None = None,
    transforms: Sequence[Transform] | None = None,
    patch_filter: BackgroundFilter | Any = "default",
    normalization: PercentileNormalization | Any = "default",
    shuffle: bool = True,
    overwrite: bool = False,
    verbose: bool = False,
    memory_budget: int | str | None = None,
    progress: Progress | None = None,
    resume: bool = True,
    nonfinite: str = "raise",
    on_empty: str = "raise",
    summary: dict[str, Any] | None = None,
) -> tuple[Any, Any, str]:
    """caredask's native API: csbdeep's algorithm with an explicit seed, no global state.

    Same patches for the same ``seed`` on any chunking, scheduler or cluster.  ``patch_filter``
    and ``normalization`` default to csbdeep's defaults (built without touching numpy's global
    random state); pass ``None`` to disable either.  A ``*.zarr`` ``save_file`` is never
    overwritten unless ``overwrite=True``.

    Parameters
    ----------
    raw_data, patch_size, n_patches_per_image, patch_axes, transforms, shuffle
        As in :func:`create_patches`.
    seed : int or numpy.random.RandomState
        All random numbers come from it, drawn in csbdeep's order.
    save_file : str or Path, optional
        ``*.npz`` (gathered on the client) or ``*.zarr``: the workers write the patches
        straight into the store; the client holds only coordinates and per-image records.
    overwrite : bool
        Replace an existing ``*.zarr`` store.
    verbose : bool
        A summary line and progress (chunks per pass, images done) on stderr.
    memory_budget : int or str, optional
        Memory the batches in flight may hold (``"4GiB"``); default 2 GiB locally (a quarter
        of smaller machines' memory), half the workers' memory on a ``distributed`` cluster.
    progress : Progress, optional
        Counters to report to (see :class:`caredask.sampling.progress.Progress`).
    resume : bool
        ``*.zarr`` output: continue an interrupted run of the same job from its ``.partial``
        store (images already written are skipped); False starts over.
    nonfinite : {"raise", "warn", "keep"}
        NaN or infinite values found in an image by the statistics pass: refuse (default,
        naming the file and the count), warn, or keep them silently as csbdeep does (patches
        may then be NaN).
    on_empty : {"raise", "skip"}
        An image the filter leaves nothing to sample from: refuse (csbdeep), or skip it; the
        result is then that of the same call without the skipped images, which are named in a
        warning and in the provenance (``skipped``).
    summary : dict, optional
        Filled with ``images``, ``patches``, ``skipped`` (names) and ``resumed`` (images taken
        over from an interrupted run).

    Returns
    -------
    X, Y : numpy.ndarray or dask.array.Array
        numpy arrays for in-memory and ``.npz`` output; dask arrays reading the store for
        ``.zarr`` output.
    axes : str
        ``'SC' + axes without 'C'``.
    """
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    if isinstance(patch_filter, str) and patch_filter == "default":
        patch_filter = no_background_patches()
    if isinstance(normalization, str) and normalization == "default":
        normalization = _DEFAULT_NORMALIZATION
    if rng is np.random.mtrand._rand:
        seed_record: Any = "numpy global random state"
    else:
        seed_record = int(seed) if not isinstance(seed, np.random.RandomState) else "RandomState"
    return _run(
        raw_data,
        patch_size,
        n_patches_per_image,
        patch_axes=patch_axes,
        save_file=save_file,
        transforms=transforms,
        patch_filter=patch_filter,
        normalization=normalization,
        shuffle=shuffle,
        verbose=verbose,
        rng=rng,
        overwrite=overwrite,
        seed_record=seed_record,
        memory_budget=memory_budget,
        progress=progress,
        resume=resume,
        nonfinite=nonfinite,
        on_empty=on_empty,
        summary=summary,
    )
