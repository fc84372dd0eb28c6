"""Planning a job: pulling the images (metadata only), skipping empty ones, the job record.

When neither the raw data's generator nor the transforms draw random numbers, every image is
pulled before any pixel is read, so csbdeep's shuffle permutation (drawn after every per-image
draw) is known up front and the workers can write patches straight to their final rows.  The
arguments that determine every row form the *job record*, compared when a run resumes.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dask.base import tokenize

from .. import __version__
from ..errors import EmptyRegionError, InputError
from ..transforms import Transform, is_rng_free, transform_labels
from .items import Checker, Item, PatchJob, compose_transforms, draw, pull_items
from .screen import describe_skipped, find_empty
from .sinks import ZarrSink

__all__ = [
    "Plan",
    "check_choice",
    "check_count",
    "job_record",
    "keep_or_abort",
    "plan_job",
    "state_token",
]


def job_record(
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


@dataclass
class Plan:
    """The images of a job after pulling (metadata only) and the shuffle permutation."""

    items: Any
    names: list[str]
    n_images: int
    k: int
    planned: bool
    perm: np.ndarray | None = None
    skipped: list[Item] = field(default_factory=list)

    @property
    def n_total(self) -> int:
        return self.n_images * self.k


def plan_job(
    raw_data: Any,
    job: PatchJob,
    check: Checker,
    transforms: Sequence[Transform] | None,
    patch_axes: str | None,
    shuffle: bool,
    on_empty: str,
    verbose: bool,
) -> Plan:
    apply, n_tf, tf_rng_free = compose_transforms(transforms, patch_axes)
    n_images = int(raw_data.size) * n_tf
    names = _labelled_names(raw_data, transforms, n_tf)
    targets = _labelled_names(raw_data, transforms, n_tf, "_caredask_targets")
    if verbose:
        print(
            f"{n_images} raw images x {job.k} patches -> {n_images * job.k} patches of size "
            f"{job.patch_size}"
        )
    items = pull_items(apply(raw_data.generator()), n_images, names, job, check, targets)
    # csbdeep draws the shuffle permutation after every per-image draw.  When neither the
    # generator nor the transforms draw random numbers, all images are pulled first (metadata
    # only), so the permutation is known before any patch is computed and patches stream to
    # their final rows.
    planned = job.known and is_rng_free(raw_data.generator) and tf_rng_free
    plan = Plan(items, names, n_images, job.k, planned)
    if on_empty == "skip" and not planned:
        raise InputError(
            "on_empty='skip' needs caredask's own filter and normalisation and raw data whose "
            "generator and transforms draw no random numbers (RawData.from_folder, "
            "from_sources or from_arrays); use on_empty='raise'"
        )
    if planned:
        plan.items = list(items)
        check_count(len(plan.items), n_images)
        if on_empty == "skip":
            plan.items, plan.skipped = _skip_empty(plan.items, job, check.channel, verbose)
            plan.n_images, plan.names = len(plan.items), [it.name for it in plan.items]
        plan.perm = job.rng.permutation(plan.n_total) if shuffle else None
    return plan


def check_choice(what: str, value: str, choices: Sequence[str]) -> None:
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


def state_token(rng: np.random.RandomState) -> str:

    return "RandomState " + tokenize(rng.get_state(legacy=False))


def keep_or_abort(sink: ZarrSink, n_images: int, error: BaseException) -> None:
    """After a failure: keep a store that holds finished images (to resume), else remove it.

    What was kept is added to ``error`` as a note (shown with its traceback; the command line
    reports it in its one line).
    """
    if not sink.records:
        sink.abort()
        return
    error.add_note(
        f"caredask: kept {sink.writer.partial_path} with {len(sink.records)} of {n_images} "
        "images written; rerun the same call or command to resume"
    )


def check_count(n: int, n_images: int) -> None:
    if n < n_images:
        raise InputError(
            f"raw data yielded {n} images, fewer than its size {n_images}; fix the generator "
            "or the size of the RawData"
        )
