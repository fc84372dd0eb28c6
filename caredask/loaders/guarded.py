"""Readers that turn a library's decode error into a :class:`FormatError` naming the data.

A corrupt Zarr chunk makes numcodecs raise ``RuntimeError: Zstd decompression error`` (or a
checksum ``ValueError``) without saying which store, array or chunk; a user read function or
chunked loader fails with whatever its library raises.  These wrappers sit between dask and the
real reader, keep its ``shape``/``dtype``/``ndim``, pickle like it, and re-raise any error
(other than a :class:`CaredaskError`) as a :class:`FormatError` that says where and how to fix
it.  For Zarr the failing stored chunk is found by reading the chunks of the failed block one
by one (only on the error path) and named by its key (``c/1/2``, ``1.2``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from ..errors import CaredaskError, FormatError

__all__ = ["GuardedReader", "ZarrChunkReader", "region_of"]

_MAX_PROBES = 256  # chunks of one failed block read one by one to find the damaged one

INDEX_CACHE_BYTES = 8 * 2**20
"""Byte ranges one extraction task keeps (shard indexes are 16 bytes per inner chunk)."""


def region_of(key: Any, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(start, stop)`` per dimension of the pixels a numpy-style ``key`` selects."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    out = []
    for k, n in zip(key, shape, strict=False):
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            idx = range(start, stop, step)
            out.append((min(idx), max(idx) + 1) if len(idx) else (0, 0))
        else:
            a = np.asarray(k).ravel() % max(n, 1)
            out.append((int(a.min()), int(a.max()) + 1) if a.size else (0, 0))
    return out


@dataclass
class ZarrChunkReader:
    """A ``zarr.Array`` for dask whose decode errors name the store, array and chunk key.

    Attributes
    ----------
    array : zarr.Array
        The array (pickles as its store location and metadata).
    where : str
        The array's path or URI, for messages.
    """

    array: Any
    where: str
    shape: tuple[int, ...] = field(init=False)
    dtype: np.dtype[Any] = field(init=False)
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.shape = tuple(self.array.shape)
        self.dtype = np.dtype(self.array.dtype)
        self.ndim = len(self.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The array's chunks (the inner chunks when sharded): its unit of decoding."""
        return tuple(self.array.chunks)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except CaredaskError:
            raise
        except Exception as e:
            raise self._damaged(key, e) from e

    def for_many_reads(self) -> ZarrChunkReader:
        """This array for one task that reads many inner chunks of the same shards.

        zarr-python fetches a shard's index again for every read of one of its inner chunks;
        the returned reader goes through zarr's in-memory byte-range cache (``CacheStore``,
        up to :data:`INDEX_CACHE_BYTES`, dropped with the reader), so a task fetches each
        index once.  Unsharded arrays, and arrays read by the ``zarrs`` pipeline (which reads
        the files itself), are returned as they are.
        """
        if getattr(self.array, "shards", None) is None:
            return self
        from zarr.experimental.cache_store import CacheStore
        from zarr.storage import MemoryStore

        from .codecs import DEFAULT_PIPELINE, codec_pipeline_name

        if codec_pipeline_name(self.array) != DEFAULT_PIPELINE.rsplit(".", 1)[1]:
            return self
        store = CacheStore(self.array.store, cache_store=MemoryStore(), max_size=INDEX_CACHE_BYTES)
        with zarr.config.set({"codec_pipeline.path": DEFAULT_PIPELINE}):
            arr = zarr.open_array(store, path=self.array.path, mode="r")
        return ZarrChunkReader(arr, self.where)

    def _unit(self) -> tuple[int, ...]:
        shards = getattr(self.array, "shards", None)
        return tuple(shards if shards is not None else self.array.chunks)

    def _damaged(self, key: Any, error: Exception) -> FormatError:
        """Find the stored chunk of ``key`` that fails and describe it."""
        unit = self._unit()
        spans = [
            range(a // c, -(-b // c))
            for (a, b), c in zip(region_of(key, self.shape), unit, strict=True)
        ]
        bad, why = None, error
        # A system error (an errno, a connection) means the store could not be reached: do not
        # probe it.  zarrs reports decode failures as plain OSError without an errno.
        unreachable = isinstance(error, ConnectionError | TimeoutError) or (
            isinstance(error, OSError) and error.errno is not None
        )
        if unreachable:
            return FormatError(
                f"{self.where}: reading pixels {key} failed ({type(error).__name__}: {error}); "
                "check that the store is reachable and readable (network share, server, "
                "permissions), then run again"
            )
        for coords in itertools.islice(itertools.product(*spans), _MAX_PROBES):
            sel = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(coords, unit, self.shape, strict=True)
            )
            try:
                self.array[sel]
            except Exception as e:  # the one that fails on its own
                bad, why = coords, e
                break
        sep = "\\" if "\\" in self.where and "/" not in self.where else "/"
        if bad is None:
            what = f"reading pixels {key}"
        else:
            chunk = self.array.metadata.encode_chunk_key(bad)
            what = f"chunk {chunk!r} ({self.where}{sep}{chunk.replace('/', sep)})"
        return FormatError(
            f"{self.where}: {what} cannot be decoded ({type(why).__name__}: {why}); the store "
            "is damaged (a half-copied or corrupted chunk file): copy the store again from the "
            "original, or rewrite this array"
        )


@dataclass
class GuardedReader:
    """Wraps any reader; its errors become a :class:`FormatError` naming ``where``.

    Attributes
    ----------
    inner : ArrayReader
        The reader (``shape``, ``dtype``, ``ndim`` and numpy-style slicing).
    where : str
        The file or URI the reader reads, for messages.
    fix : str
        How the user fixes a failing read.
    """

    inner: Any
    where: str
    fix: str = "check the file and the read function"
    shape: tuple[int, ...] = field(init=False)
    dtype: np.dtype[Any] = field(init=False)
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(n) for n in self.inner.shape)
        self.dtype = np.dtype(self.inner.dtype)
        self.ndim = len(self.shape)

    @property
    def read_chunks(self) -> Any:
        """The wrapped reader's unit of decoding, if it declares one."""
        return getattr(self.inner, "read_chunks", None) or getattr(self.inner, "chunks", None)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.inner[key])
        except CaredaskError:
            raise
        except Exception as e:
            raise FormatError(
                f"{self.where}: reading pixels {key} failed ({type(e).__name__}: {e}); {self.fix}"
            ) from e
