"""Where a job's patches go: a streaming ``.zarr`` store written by the workers, or memory.

:func:`open_sink` chooses the sink before any work (workers write into a ``.zarr`` store when
every patch's row is known up front; otherwise patches are gathered in memory), and
:func:`finish_output` closes it into what the API returns, saving ``.npz`` (csbdeep's format)
or a ``.zarr`` store from memory where needed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..writers.npz import save_training_data
from ..writers.paths import is_zarr_output
from .items import Checker, PatchJob
from .planning import Plan
from .sinks import MemorySink, ZarrSink

__all__ = ["finish_output", "is_zarr_save", "open_sink", "out_shape", "output_axes"]


def is_zarr_save(save_file: Any) -> bool:
    """Whether the job writes a ``.zarr`` store (no file, or an ``.npz`` file, otherwise)."""
    return save_file is not None and is_zarr_output(save_file)


def open_sink(
    plan: Plan,
    job: PatchJob,
    check: Checker,
    save_file: Any,
    overwrite: bool,
    resume: bool,
    job_record: Any,
) -> MemorySink | ZarrSink:
    """Workers write into a ``.zarr`` store when rows are known up front, else memory."""
    if not (is_zarr_save(save_file) and plan.planned):
        return MemorySink(plan.n_total, job.patch_size, job.k, plan.perm)
    assert check.axes is not None and job.progress is not None
    sink = ZarrSink(
        save_file,
        plan.n_total,
        out_shape(job.patch_size, check.channel),
        output_axes(check.axes),
        job.k,
        plan.perm,
        check.channel,
        overwrite,
        job=job_record(),
        resume=resume,
    )
    if sink.resumed:
        job.progress.image_done(sink.resumed)
        print(
            f"caredask: resuming {sink.writer.partial_path}: {sink.resumed} of "
            f"{plan.n_images} images already written",
            file=sys.stderr,
        )
    return sink


def finish_output(
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
    if is_zarr_save(save_file):
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


def output_axes(axes: str) -> str:
    return "SC" + axes.replace("C", "")


def out_shape(patch_size: tuple[int, ...], channel: int | None) -> tuple[int, ...]:
    if channel is None:
        return (1, *patch_size)
    rest = [p for i, p in enumerate(patch_size) if i != channel]
    return (patch_size[channel], *rest)
