"""Where finished patches go: memory (csbdeep's return value) or a Zarr store the workers write.

A sink says where the finishing tasks deliver an item's patches (:meth:`target`): nowhere (the
patches come back to the client, for in-memory and ``.npz`` output) or straight into rows of a
Zarr store.  When the final shuffle permutation is known up front the rows are the shuffled
positions; otherwise the memory sink permutes at the end, as csbdeep does.  The Zarr sink
records each finished image in its ``.partial`` store, so an interrupted job resumes there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..writers.zarr_store import TrainingDataWriter
from .extract import to_output_layout
from .pipeline import Item

__all__ = ["MemorySink", "ZarrSink", "record", "to_output_layout"]


class _Rows:
    """Maps unshuffled rows (``image * k + j``) to output rows."""

    def __init__(self, k: int, perm: np.ndarray | None) -> None:
        self.k = k
        self.inv = None if perm is None else np.argsort(perm)

    def of(self, index: int) -> np.ndarray:
        rows = np.arange(index * self.k, (index + 1) * self.k)
        return rows if self.inv is None else self.inv[rows]


class MemorySink:
    """Collects all patches in RAM (what csbdeep's ``create_patches`` returns)."""

    skip: frozenset[int] = frozenset()

    def __init__(self, n: int, patch_size: tuple[int, ...], k: int, perm: np.ndarray | None):
        self.X = np.empty((n, *patch_size), np.float32)
        self.Y = np.empty_like(self.X)
        self.rows = _Rows(k, perm)
        self.records: dict[int, dict[str, Any]] = {}

    def target(self, item: Item) -> tuple[None, None, str]:
        """The finishing tasks return their patches."""
        return None, None, ""

    def accept(self, item: Item, results: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Place an item's finished groups of patches."""
        px = np.concatenate([r[0] for r in results])
        py = np.concatenate([r[1] for r in results])
        self.accept_eager(item, (px, py))

    def accept_eager(self, item: Item, out: tuple[np.ndarray, np.ndarray]) -> None:
        """Place an item's normalised patches computed on the client."""
        r = self.rows.of(item.index)
        self.X[r], self.Y[r] = out
        self.records[item.index] = record(item)

    def finish(self, perm: np.ndarray | None, channel: int | None) -> tuple[np.ndarray, ...]:
        """Apply a late permutation, move the channel axis; return ``X, Y``."""
        X, Y = self.X, self.Y
        if perm is not None:
            X, Y = X[perm], Y[perm]
        return to_output_layout(X, channel), to_output_layout(Y, channel)

    def image_records(self) -> list[dict[str, Any]]:
        """Per-image provenance in image order."""
        return [self.records[i] for i in sorted(self.records)]


class ZarrSink:
    """Patches written by the workers into a Zarr v3 store, rows at their shuffled positions.

    The client keeps only coordinates and per-image records.  With ``job`` (the arguments
    that determine every row) an interrupted store of the same job is resumed: images it
    recorded as finished are skipped (:attr:`skip`).
    """

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
        job: dict[str, Any] | None = None,
        resume: bool = True,
    ) -> None:
        self.writer = TrainingDataWriter(
            path,
            n,
            patch_shape,
            patch_shape,
            axes_out,
            overwrite=overwrite,
            job=job,
            resume=resume,
        )
        self.rows = _Rows(k, perm)
        self.k = k
        ndim = len(patch_shape) - (1 if channel is None else 0)
        self.starts = np.zeros((n, ndim), np.int64)
        self.image = np.zeros(n, np.int64)
        self.records: dict[int, dict[str, Any]] = {}
        for index, rec in self.writer.done_records().items():
            self._keep(index, rec)
        self.skip = frozenset(self.records)

    @property
    def resumed(self) -> int:
        """Images taken over from an interrupted run."""
        return len(self.skip)

    def _keep(self, index: int, rec: dict[str, Any]) -> None:
        r = self.rows.of(index)
        self.starts[r] = np.asarray(rec.pop("patch_starts"), np.int64)
        self.image[r] = index
        self.records[index] = rec

    def target(self, item: Item) -> tuple[np.ndarray, tuple[Any, Any], str]:
        """The finishing tasks write the item's rows of ``X`` and ``Y``."""
        w = self.writer
        return self.rows.of(item.index), w.targets, str(w.partial_path)

    def accept(self, item: Item, results: list[int]) -> None:
        """All rows of ``item`` are written: record it (durably, for resuming)."""
        if sum(results) != self.k:
            raise RuntimeError(f"{item.name}: {sum(results)} of {self.k} patches written")
        rec = record(item)
        self.writer.mark_done(item.index, rec)
        self._keep(item.index, rec)

    def close(self, provenance: dict[str, Any]) -> Path:
        """Write coordinates and provenance, mark complete, move into place."""
        self.writer.add_array("patch_start", self.starts)
        self.writer.add_array("patch_image", self.image)
        self.writer.set_attrs(**provenance, images=[self.records[i] for i in sorted(self.records)])
        self.writer.close()
        return self.writer.path

    def abort(self) -> None:
        """Remove the partial store."""
        self.writer.abort()


def record(it: Item) -> dict[str, Any]:
    """Provenance of one image: name, seed, threshold, percentiles and patch starts."""
    st = it.stats
    return {
        "index": it.index,
        "name": it.name,
        "shape": list(map(int, it.y.shape)),
        "seed": it.seed,
        "threshold": None if st.threshold is None else float(st.threshold),
        "percentiles": None if it.pairs is None else it.pairs.tolist(),
        "mask_reread": st.mask_reread,
        "patch_starts": None if it.starts is None else it.starts.tolist(),
    }
