"""Shared fixtures: small synthetic image pairs and a no-compute scheduler."""

from __future__ import annotations

import numpy as np
import pytest


def fail_on_compute(*args, **kwargs):
    """A dask scheduler that refuses to compute: proves graph building reads nothing."""
    raise AssertionError("a dask computation ran while only building a graph")


@pytest.fixture
def no_compute():
    import dask

    with dask.config.set(scheduler=fail_on_compute):
        yield


def blob_pair(shape, seed, dtype=np.uint16, channels=None):
    """A small source/target pair with sparse bright blobs on a dim background."""
    from scipy import ndimage as ndi

    rs = np.random.RandomState(seed)
    clean = np.zeros(shape, np.float64)
    n = max(2, int(np.prod(shape) // 400))
    idx = tuple(rs.randint(0, s, n) for s in shape)
    clean[idx] = rs.uniform(500, 3000, n)
    clean = ndi.gaussian_filter(clean, 1.5) * 20 + 100
    y = clean + rs.normal(0, 3, shape)
    x = clean / 4 + rs.normal(0, 20, shape) + 50
    if channels is not None:
        y = np.stack([y, y[::-1] * 0.5 + 50][:channels], axis=channels_axis_default(len(shape)))
        x = np.stack([x, x[::-1] * 0.7 + 20][:channels], axis=channels_axis_default(len(shape)))
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        x, y = (np.clip(a, info.min, info.max).astype(dtype) for a in (x, y))
    else:
        x, y = x.astype(dtype), y.astype(dtype)
    return x, y


def channels_axis_default(ndim):
    return 0


@pytest.fixture
def sigint_deliverable():
    """Let CLI children started in the test act on Ctrl-C even if this process ignores it.

    A shell starts background jobs (``pytest ... &``) with SIGINT ignored, and a child
    inherits an ignored signal across ``exec``; a handler is reset to the default instead, so
    with one installed here the child's Python turns SIGINT into KeyboardInterrupt as usual.
    """
    import signal

    old = signal.getsignal(signal.SIGINT)
    if old == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if old == signal.SIG_IGN:
        signal.signal(signal.SIGINT, old)
