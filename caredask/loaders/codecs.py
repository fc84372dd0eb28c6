"""Which zarr codec pipeline caredask reads (and writes) Zarr v2/v3 with.

When the ``zarrs`` package is installed (``pip install 'caredask[fast]'``), caredask opens
local Zarr arrays with its Rust codec pipeline (``zarrs.ZarrsCodecPipeline``), which reads and
decodes 1.4-2.1x faster than zarr-python's default (``benchmarks/bench_reads.py``); the pixels
are identical.  Turn it off with the
environment variable ``CAREDASK_ZARRS=0``, with :func:`use_zarrs` (``use_zarrs(False)``, or
``with use_zarrs(False): ...``) or with ``caredask --no-zarrs ...`` on the command line.

How it reaches distributed workers: zarr-python binds the codec pipeline to an array when the
array is *opened* (``zarr.config['codec_pipeline.path']`` is read then, not at read time).
The loader opens every array inside :func:`zarr_config`, so the ``zarr.Array`` in the dask
graph carries its pipeline; ``ZarrsCodecPipeline`` pickles as the array metadata and store
location and rebuilds its Rust reader when a worker process unpickles the task.  No worker
setup (plugin or configuration) is needed, and the choice made on the client is the one every
worker uses (a worker must have ``zarrs`` installed if the client used it, as with any package
the graph refers to).  Remote stores (any URI but ``file://``) keep zarr-python's pipeline
(see :func:`zarr_config`), and so do stores the Rust pipeline does not support (e.g.
in-memory ones; zarr-python decides that itself).
The Rust pipeline reads files itself, past Python store methods: anything that counts or
intercepts store reads (``zarr.storage.WrapperStore``, monkeypatched ``LocalStore.get``)
sees its reads only with zarr-python's pipeline (``use_zarrs(False)``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from typing import Any

import zarr

__all__ = [
    "DEFAULT_PIPELINE",
    "ZARRS_PIPELINE",
    "codec_pipeline_name",
    "use_zarrs",
    "zarr_config",
    "zarrs_available",
    "zarrs_enabled",
]

ZARRS_PIPELINE = "zarrs.ZarrsCodecPipeline"
"""The Rust codec pipeline of the ``zarrs`` package."""
DEFAULT_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
"""zarr-python's own codec pipeline."""
_ENV = "CAREDASK_ZARRS"
_OFF = frozenset({"0", "false", "no", "off"})
_switch: list[bool | None] = [None]  # set by use_zarrs(); None: environment, then installed
# zarr.config.set saves and restores the global config: serialise it, or two threads opening
# at once could restore each other's value and leave the process-wide setting changed.
_config_lock = threading.RLock()


def zarrs_available() -> bool:
    """Whether the ``zarrs`` package is installed."""
    return importlib.util.find_spec("zarrs") is not None


def zarrs_enabled() -> bool:
    """Whether caredask opens Zarr arrays with the ``zarrs`` pipeline now.

    :func:`use_zarrs` wins, then ``CAREDASK_ZARRS`` (``0``/``false``/``no``/``off`` turn it
    off), then whether ``zarrs`` is installed.
    """
    if not zarrs_available():
        return False
    if _switch[0] is not None:
        return _switch[0]
    return os.environ.get(_ENV, "1").strip().lower() not in _OFF


class use_zarrs:
    """Turn the ``zarrs`` pipeline on or off for arrays opened from now on.

    ``use_zarrs(False)`` switches it off (until ``use_zarrs(None)`` hands the choice back to
    ``CAREDASK_ZARRS`` and the installation); ``with use_zarrs(False): ...`` switches it off
    inside the block only.  ``True`` has no effect when ``zarrs`` is not installed.  Arrays
    keep the pipeline they were opened with, so set this before opening sources.
    """

    def __init__(self, enabled: bool | None) -> None:
        self._previous = _switch[0]
        self._enabled = enabled
        _switch[0] = enabled

    def __enter__(self) -> use_zarrs:
        _switch[0] = self._enabled
        return self

    def __exit__(self, *exc: object) -> None:
        _switch[0] = self._previous


def _pipeline_path() -> str:
    return ZARRS_PIPELINE if zarrs_enabled() else DEFAULT_PIPELINE


@contextlib.contextmanager
def zarr_config(local: bool = True) -> Iterator[None]:
    """Open (or create) zarr arrays inside this block to give them caredask's pipeline.

    ``local=False`` (remote stores) keeps zarr-python's pipeline: ``zarrs`` would fetch HTTP
    stores itself, without the fsspec ``storage_options`` (credentials, ``anon``) and holding
    the interpreter while it waits (a server in the same process then never answers).
    """
    path = _pipeline_path() if local else DEFAULT_PIPELINE
    with _config_lock, zarr.config.set({"codec_pipeline.path": path}):
        yield


def codec_pipeline_name(arr: Any) -> str:
    """The class name of the codec pipeline a ``zarr.Array`` reads with."""
    return type(arr._async_array.codec_pipeline).__name__
