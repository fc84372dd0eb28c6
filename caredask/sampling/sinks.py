"""Where processed patches go: memory (csbdeep's return value) or a streaming Zarr store.

A sink receives each batch in sample order (image by image, patch by patch).  When the final
shuffle permutation is known up front the rows go straight to their shuffled positions;
otherwise the memory sink permutes at the end, as csbdeep does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..writers.zarr_store import TrainingDataWriter
from .pipeline import Item

__all__ = ["MemorySink", "ZarrSink", "to_output_layout"]


def to_output_layout(a: np.ndarray, channel: int | None) -> np.ndarray:
    """``(n, *patch)`` to csbdeep's ``(S, C, ...)`` layout."""
    return a[:, None] if channel is None else np.moveaxis(a, 1 + channel, 1)


class _Rows:
    """Maps unshuffled rows (``image * k + j``) to output rows."""

    def __init__(self, k: int, perm: np.ndarray | None) -> None:
        self.k = k
        self.inv = None if perm is None else np.argsort(perm)

    def of(self, item: Item) -> np.ndarray:
        rows = np.arange(item.index * self.k, (item.index + 1) * self.k)
        return rows if self.inv is None else self.inv[rows]


class MemorySink:
    """Collects all patches in RAM (what csbdeep's ``create_patches`` returns)."""

    def __init__(self, n: int, patch_size: tuple[int, ...], k: int, perm: np.ndarray | None):
        self.X = np.empty((n, *patch_size), np.float32)
        self.Y = np.empty_like(self.X)
        self.rows = _Rows(k, perm)
        self.records: list[dict[str, Any]] = []

    def __call__(self, items: list[Item], out: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for it, (px, py) in zip(items, out, strict=True):
            r = self.rows.of(it)
            self.X[r], self.Y[r] = px, py
            self.records.append(record(it))

    def finish(self, perm: np.ndarray | None, channel: int | None) -> tuple[np.ndarray, ...]:
        """Apply a late permutation, move the channel axis; return ``X, Y``."""
        X, Y = self.X, self.Y
        if perm is not None:
            X, Y = X[perm], Y[perm]
        return to_output_layout(X, channel), to_output_layout(Y, channel)


class ZarrSink:
    """Streams patches into a Zarr v3 store; rows land at their shuffled positions."""

    def __init__(
        self,
        path: str | Path,
        n: int,
        patch_shape: tuple[int, ...],
        axes_out: str,
        k: int,
        perm: np.ndarray | None,
        channel: int | None,
        overwrite: bool,
    ) -> None:
        self.writer = TrainingDataWriter(
            path, n, patch_shape, patch_shape, axes_out, overwrite=overwrite
        )
        self.rows = _Rows(k, perm)
        self.channel = channel
        self.records: list[dict[str, Any]] = []
        ndim = len(patch_shape) - (1 if channel is None else 0)
        self.starts = np.zeros((n, ndim), np.int64)
        self.image = np.zeros(n, np.int64)

    def __call__(self, items: list[Item], out: list[tuple[np.ndarray, np.ndarray]]) -> None:
        for it, (px, py) in zip(items, out, strict=True):
            r = self.rows.of(it)
            self.writer.write(
                r, to_output_layout(px, self.channel), to_output_layout(py, self.channel)
            )
            assert it.starts is not None
            self.starts[r], self.image[r] = it.starts, it.index
            self.records.append(record(it, starts=False))

    def close(self, provenance: dict[str, Any]) -> Path:
        """Write coordinates and provenance, mark complete, move into place."""
        self.writer.add_array("patch_start", self.starts)
        self.writer.add_array("patch_image", self.image)
        self.writer.set_attrs(**provenance, images=self.records)
        self.writer.close()
        return self.writer.path

    def abort(self) -> None:
        """Remove the partial store."""
        self.writer.abort()


def record(it: Item, starts: bool = True) -> dict[str, Any]:
    """Provenance of one image: name, seed, threshold, percentiles (and patch starts)."""
    st = it.stats
    return {
        "index": it.index,
        "name": it.name,
        "shape": list(map(int, it.y.shape)),
        "seed": it.seed,
        "threshold": None if st.threshold is None else float(st.threshold),
        "percentiles": None if it.pairs is None else it.pairs.tolist(),
        "patch_starts": it.starts.tolist() if starts and it.starts is not None else None,
    }
