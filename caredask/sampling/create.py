"""``create_patches`` with csbdeep's signature and exact output, and caredask's native API."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..augment import transform_labels
from ..axes import axes_check_and_normalize, axes_dict
from ..errors import AxesError, EmptyRegionError, InputError
from ..masks.filters import BackgroundFilter, no_background_patches
from ..statistics.normalize import PercentileNormalization, sample_percentiles
from ..transforms import Transform, broadcast_target, is_rng_free
from ..writers.npz import save_training_data
from .pipeline import Checker, Item, PatchJob, compose_transforms, draw, pull_items, run_pipeline
from .progress import Progress
from .screen import ON_EMPTY, describe_skipped, find_empty
from .sinks import MemorySink, ZarrSink
from .stats import NONFINITE_POLICIES

__all__ = ["create_patches", "create_patches_reduced_target", "generate_training_data"]

# csbdeep's defaults, built without its import-time validation draws (those happen when
# ``caredask.csbdeep`` is imported, as with ``csbdeep.data``).
_DEFAULT_NORMALIZATION = PercentileNormalization(sample_percentiles())
_DEFAULT_FILTER = no_background_patches()


def _is_zarr(save_file: Any) -> bool:
    return save_file is not None and str(save_file).rstrip("/").endswith(".zarr")


def _job_record(
    items: list[Any],
    names: list[str],
    patch_size: tuple[int, ...],
    k: int,
    job: PatchJob,
    shuffle: bool,
    seed_record: Any,
    rng_state: str,
) -> dict[str, Any]:
    """The arguments that determine every output row (compared when resuming)."""
    from dask.base import tokenize

    return {
        "inputs": tokenize([(it.name, it.x.name, it.y.name) for it in items]),
        "n_images": len(items),
        "names": tokenize(names),
        "patch_size": list(patch_size),
        "n_patches_per_image": k,
        "patch_filter": repr(job.patch_filter),
        "normalization": repr(job.normalization),
        "shuffle": bool(shuffle),
        "seed": seed_record if isinstance(seed_record, int) else rng_state,
        "caredask_version": __version__,
    }


def _labelled_names(
    raw_data: Any, transforms: Any, n_tf: int, attr: str = "_caredask_names"
) -> list[str]:
    names = list(getattr(raw_data.generator, attr, []))
    if n_tf > 1:  # e.g. img.tif#flipX,c1: which transform output each image is
        labels = transform_labels(list(transforms or []))
        names = [f"{nm}#{lab}" if lab else nm for nm in names for lab in labels]
    return names


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
    _check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
    _check_choice("on_empty", on_empty, ON_EMPTY)
    patch_size = tuple(int(p) for p in patch_size)
    k = int(n_patches_per_image)
    if k <= 0:
        raise InputError(f"n_patches_per_image={n_patches_per_image} must be a positive integer")
    apply, n_tf, tf_rng_free = compose_transforms(transforms, patch_axes)
    n_images = int(raw_data.size) * n_tf
    n_total = n_images * k
    names = _labelled_names(raw_data, transforms, n_tf)
    rng_state = _state_token(rng)
    if verbose:
        print(f"{n_images} raw images x {k} patches -> {n_total} patches of size {patch_size}")
    job = PatchJob(patch_size, k, patch_filter, normalization, rng, memory_budget=memory_budget)
    job.nonfinite, job.draw = nonfinite, on_empty != "skip"
    check = Checker(patch_size)
    targets = _labelled_names(raw_data, transforms, n_tf, "_caredask_targets")
    items: Any = pull_items(apply(raw_data.generator()), n_images, names, job, check, targets)
    # csbdeep draws the shuffle permutation after every per-image draw.  When neither the
    # generator nor the transforms draw random numbers, all images are pulled first (metadata
    # only), so the permutation is known before any patch is computed and patches stream to
    # their final rows.
    planned = job.known and is_rng_free(raw_data.generator) and tf_rng_free
    if on_empty == "skip" and not planned:
        raise InputError(
            "on_empty='skip' needs caredask's own filter and normalisation and raw data whose "
            "generator and transforms draw no random numbers (RawData.from_folder, "
            "from_sources or from_arrays); use on_empty='raise'"
        )
    perm = None
    estimate = 0
    skipped: list[Item] = []
    if planned:
        items = list(items)
        _check_count(len(items), n_images)
        if on_empty == "skip":
            items, skipped = _skip_empty(items, job, check.channel, verbose)
            n_images, n_total = len(items), len(items) * k
            names = [it.name for it in items]
        perm = rng.permutation(n_total) if shuffle else None
        estimate = sum(2 * (it.x.npartitions + it.y.npartitions) for it in items)
    if progress is None:
        progress = Progress(n_images, estimate, enabled=verbose)
    else:
        progress.n_images, progress.estimate = n_images, estimate
    job.progress = progress
    sink: Any
    if _is_zarr(save_file) and planned:
        assert check.axes is not None
        record = _job_record(items, names, patch_size, k, job, shuffle, seed_record, rng_state)
        sink = ZarrSink(
            save_file,
            n_total,
            _out_shape(patch_size, check.channel),
            _output_axes(check.axes),
            k,
            perm,
            check.channel,
            overwrite,
            job=record,
            resume=resume,
        )
        if sink.resumed:
            progress.image_done(sink.resumed)
            print(
                f"caredask: resuming {sink.writer.partial_path}: {sink.resumed} of {n_images} "
                "images already written",
                file=sys.stderr,
            )
    else:
        sink = MemorySink(n_total, patch_size, k, perm)
    try:
        n_done = run_pipeline(iter(items), job, check, sink)
        _check_count(n_done, n_images)
    except BaseException:
        if isinstance(sink, ZarrSink):
            _keep_or_abort(sink, n_images)
        raise
    finally:
        progress.close()
    assert check.axes is not None
    if not planned and shuffle:
        perm = rng.permutation(n_total)
    axes_out = _output_axes(check.axes)
    record = {
        "sources": names,
        "axes": check.axes,
        "patch_size": list(patch_size),
        "n_patches_per_image": k,
        "shuffle": bool(shuffle),
        "caredask_version": __version__,
        "seed": seed_record,
        "skipped": [it.name for it in skipped],
    }
    if summary is not None:
        resumed = getattr(sink, "resumed", 0)
        summary.update(images=n_images, patches=n_total, skipped=record["skipped"], resumed=resumed)
    return _finish(
        sink,
        None if planned else perm,
        check.channel,
        axes_out,
        save_file,
        record,
        overwrite,
        verbose,
    )


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(f"{what}={value!r} is not one of {', '.join(map(repr, choices))}")


def _skip_empty(
    items: list[Item], job: PatchJob, channel: int | None, verbose: bool
) -> tuple[list[Item], list[Item]]:
    """Drop images without foreground, then draw for the rest as if they were all there was."""
    empty = find_empty(items, job, channel)
    gone = {it.index for it in empty}
    kept = [it for it in items if it.index not in gone]
    if not kept:
        raise EmptyRegionError(
            f"no image has a region to sample from ({describe_skipped(empty)}); lower the "
            "filter threshold or pass patch_filter=None"
        )
    for i, it in enumerate(kept):
        it.index = i
        draw(it, job)
    if empty:
        warnings.warn(describe_skipped(empty), stacklevel=4)
        if verbose:
            print(describe_skipped(empty), file=sys.stderr)
    return kept, empty


def _state_token(rng: np.random.RandomState) -> str:
    from dask.base import tokenize

    return "RandomState " + tokenize(rng.get_state(legacy=False))


def _keep_or_abort(sink: ZarrSink, n_images: int) -> None:
    """After a failure: keep a store that holds finished images (to resume), else remove it."""
    if not sink.records:
        sink.abort()
        return
    print(
        f"caredask: kept {sink.writer.partial_path} with {len(sink.records)} of {n_images} "
        "images written; rerun the same command to resume",
        file=sys.stderr,
    )


def _check_count(n: int, n_images: int) -> None:
    if n < n_images:
        raise InputError(
            f"raw data yielded {n} images, fewer than its size {n_images}; fix the generator "
            "or the size of the RawData"
        )


def _finish(
    sink: Any,
    perm: np.ndarray | None,
    channel: int | None,
    axes_out: str,
    save_file: Any,
    record: dict[str, Any],
    overwrite: bool,
    verbose: bool,
) -> tuple[Any, Any, str]:
    if isinstance(sink, ZarrSink):
        import dask.array as da
        import zarr

        g = zarr.open_group(sink.close(record), mode="r")
        return da.from_zarr(g["X"]), da.from_zarr(g["Y"]), axes_out
    X, Y = sink.finish(perm, channel)
    if _is_zarr(save_file):
        from ..writers.zarr_store import save_training_data_zarr

        save_training_data_zarr(
            save_file,
            X,
            Y,
            axes_out,
            attrs={**record, "images": sink.image_records()},
            overwrite=overwrite,
        )
    elif save_file is not None:
        if verbose:
            print(f"Saving data to {Path(save_file).with_suffix('.npz')}.")
        save_training_data(save_file, X, Y, axes_out)
    return X, Y, axes_out


def _output_axes(axes: str) -> str:
    return "SC" + axes.replace("C", "")


def _out_shape(patch_size: tuple[int, ...], channel: int | None) -> tuple[int, ...]:
    if channel is None:
        return (1, *patch_size)
    rest = [p for i, p in enumerate(patch_size) if i != channel]
    return (patch_size[channel], *rest)


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


def _fill_none_sizes(
    raw_data: Any,
    patch_size: Sequence[int | None],
    reduction_axes: str,
    transforms: list[Transform],
    patch_axes: str | None,
) -> tuple[int, ...]:
    if all(s is not None for s in patch_size):
        return tuple(int(s) for s in patch_size)  # type: ignore[arg-type]
    apply, _, _ = compose_transforms(transforms, patch_axes)
    x, _, axes, _ = next(iter(apply(raw_data.generator())))
    out = []
    for i, (a, s) in enumerate(zip(axes, patch_size, strict=False)):
        if s is None and a not in reduction_axes:
            raise InputError(
                f"entry of patch_size is None for non reduction axis {a}; give a size for it"
            )
        out.append(int(x.shape[i]) if s is None else int(s))
    return tuple(out)


def create_patches_reduced_target(
    raw_data: Any,
    patch_size: Sequence[int | None],
    n_patches_per_image: int,
    reduction_axes: str,
    target_axes: str | None = None,
    **kwargs: Any,
) -> tuple[Any, Any, str]:
    """csbdeep's ``create_patches_reduced_target``: targets reduced to size 1 along axes.

    The target is broadcast to the source's shape (first transform), patches are created as
    with :func:`create_patches`, and ``Y`` keeps index 0 along every reduction axis.  csbdeep's
    ``TypeError`` for a reduction axis missing from the patches is an :class:`AxesError` here.
    """
    reduction_axes = axes_check_and_normalize(reduction_axes, disallowed="S")
    transforms = [broadcast_target(target_axes), *list(kwargs.get("transforms") or [])]
    kwargs["transforms"] = transforms
    save_file = kwargs.pop("save_file", None)
    patch_size = _fill_none_sizes(
        raw_data, patch_size, reduction_axes, transforms, kwargs.get("patch_axes")
    )
    X, Y, axes = create_patches(raw_data, patch_size, n_patches_per_image, **kwargs)
    ax = axes_dict(axes)
    for a in reduction_axes:
        if a not in axes:
            raise AxesError(f"reduction axis {a} not present in extracted patches (axes {axes})")
        if Y.shape[ax[a]] == 1:
            warnings.warn(
                f"extracted target patches already have dimensionality 1 along reduction axis {a}.",
                stacklevel=2,
            )
            continue
        t = np.take(Y, (1,), axis=ax[a])
        Y = np.take(Y, (0,), axis=ax[a])
        i = np.random.choice(Y.size, size=100)  # noqa: NPY002 (csbdeep uses the global state)
        if not np.all(t.flat[i] == Y.flat[i]):
            warnings.warn(f"extracted target patches vary along reduction axis {a}.", stacklevel=2)
    if save_file is not None:
        save_training_data(save_file, X, Y, axes)
    return X, Y, axes


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
