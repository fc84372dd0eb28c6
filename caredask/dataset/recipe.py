"""The recorded recipe of a dataset: its specs (JSON) and the objects they stand for.

A manifest records normalisation, patch filter and pixel masks as JSON specs;
:func:`normalization_spec` / :func:`mask_spec` make a spec from what the user passed,
:func:`make_normalization` / :func:`make_filter` / :func:`open_mask_list` make the objects
again, :func:`open_entries` / :func:`training_raw_data` open the recorded images, and
:func:`training_digest` fingerprints the training data they make.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..loaders import LazyImage, open_images
from ..loaders.discover import is_uri
from ..loaders.pairing import image_where
from ..masks.filters import no_background_patches
from ..rawdata import RawData, open_masks
from ..statistics.normalize import PercentileNormalization, sample_percentiles
from ..transforms import mark_rng_free
from .pairing import Pair, record_entry
from .records import read_json, write_json_atomic
from .stats import StreamStatistics, dataset_normalization

__all__ = [
    "DEFAULT_FILTER",
    "MANIFEST_SCHEMA",
    "NORMALIZATIONS",
    "Manifest",
    "make_filter",
    "manifest_data",
    "make_normalization",
    "manifest_inputs",
    "mask_spec",
    "normalization_spec",
    "open_entries",
    "open_mask_list",
    "training_digest",
    "training_raw_data",
]

MANIFEST_SCHEMA = "caredask.dataset/1"
NORMALIZATIONS: dict[str, dict[str, Any]] = {
    "percentile": {
        "mode": "percentile",
        "pmin": [1.0, 3.0],
        "pmax": [99.5, 99.9],
        "relu_last": False,
    },
    "dataset": {"mode": "dataset", "pmin": 1.0, "pmax": 99.8},
}
DEFAULT_FILTER = {"kind": "no_background_patches", "threshold": 0.4, "percentile": 99.9}


def open_entries(
    entries: Sequence[dict[str, Any]], axes: str | None, options: dict[str, Any]
) -> list[LazyImage]:
    """Open the images manifest entries (:func:`~caredask.dataset.pairing.record_entry`) name,
    each path once (a unit of several images is one file or store)."""
    units: dict[str, list[LazyImage]] = {}
    out = []
    for e in entries:
        if e["path"] not in units:
            units[e["path"]] = open_images(e["path"], axes, **options)
        out.append(units[e["path"]][int(e["image"] or 0)])
    return out


def training_raw_data(
    xs: list[LazyImage], ys: list[LazyImage], masks: list[Any] | None = None
) -> RawData:
    """Training pairs (and their masks) as :class:`RawData`, named by their sources."""

    def _gen() -> Iterator[Any]:
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            yield x.data, y.data, x.axes, None if masks is None else masks[i]

    gen: Any = mark_rng_free(_gen)  # type: ignore[arg-type]
    gen._caredask_names = [image_where(x) for x in xs]
    return RawData(gen, len(xs), f"caredask dataset: {len(xs)} training pairs")


def mask_spec(
    mask: Any, label: str | None, values: Sequence[int] | None, axes: str | None
) -> dict[str, Any] | None:
    """The JSON record of the pixel-mask options (``None``: no masks)."""
    if mask is None and label is None:
        return None
    if mask is not None:
        many = isinstance(mask, list | tuple)
        if not all(isinstance(m, str | os.PathLike) for m in (mask if many else [mask])):
            raise InputError("dataset masks must be given as paths or URIs (they are recorded)")
        mask = [_abs(m) for m in mask] if many else _abs(mask)
    vals = None if values is None else [int(v) for v in values]
    return {"source": mask, "label": label, "values": vals, "axes": axes}


def _abs(p: Any) -> str:
    return p if is_uri(p) else os.path.abspath(p)


def open_mask_list(
    xs: list[LazyImage],
    ys: list[LazyImage],
    axes: str | None,
    spec: dict[str, Any] | None,
    options: dict[str, Any],
) -> list[Any] | None:
    """The pixel masks of the training pairs a mask spec records (``None``: no masks)."""
    if spec is None:
        return None
    return open_masks(
        xs,
        ys,
        axes,
        mask=spec["source"],
        mask_label=spec["label"],
        mask_values=spec["values"],
        mask_axes=spec["axes"],
        **options,
    )


def make_normalization(
    spec: dict[str, Any] | None,
    stats: Callable[[], tuple[StreamStatistics, StreamStatistics]],
) -> Any:
    """The normalisation a spec records; ``stats()`` gives the source and target statistics.

    ``stats`` is called only for the ``'dataset'`` mode.
    """
    if spec is None:
        return None
    mode = spec.get("mode")
    if mode == "dataset":
        src, tgt = stats()
        return dataset_normalization(src, tgt, spec["pmin"], spec["pmax"])
    if mode == "percentile":
        relu = bool(spec.get("relu_last", False))
        if spec.get("percentiles") is not None:
            return PercentileNormalization(tuple(spec["percentiles"]), relu)
        return PercentileNormalization(
            sample_percentiles(tuple(spec["pmin"]), tuple(spec["pmax"])),
            relu,
        )
    raise InputError(f"normalization mode {mode!r}: use 'percentile', 'dataset' or None")


def make_filter(spec: dict[str, Any] | None) -> Any:
    """The patch filter a spec records (``None``: no filter)."""
    if spec is None:
        return None
    if spec.get("kind") != "no_background_patches":
        raise InputError(f"patch filter {spec!r}: only 'no_background_patches' is recorded")
    return no_background_patches(spec["threshold"], spec["percentile"])


def normalization_spec(normalization: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if normalization is None or normalization == "none":
        return None
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise InputError(
                f"normalization={normalization!r}: use 'percentile' (csbdeep, per image), "
                "'dataset' (dataset percentiles) or None"
            )
        return dict(NORMALIZATIONS[normalization])
    mode = normalization.get("mode")
    if mode not in NORMALIZATIONS:
        raise InputError(f"normalization mode {mode!r}: use 'percentile' or 'dataset'")
    return {**NORMALIZATIONS[mode], **normalization}


def training_digest(X: Any, Y: Any, axes: str, rows: int = 256) -> str:
    """SHA-256 of training data content: shapes, dtypes, axes and the bytes of ``X`` and ``Y``.

    Independent of the file format (``.npz`` timestamps, Zarr chunking); reads ``rows`` patches
    at a time from numpy, dask or zarr arrays.
    """
    h = hashlib.sha256(f"caredask-training/1\0{axes}\0".encode())
    for arr in (X, Y):
        h.update(f"{tuple(arr.shape)}\0{np.dtype(arr.dtype).str}\0".encode())
        for i in range(0, int(arr.shape[0]), rows):
            h.update(np.ascontiguousarray(np.asarray(arr[i : i + rows])).tobytes())
    return h.hexdigest()


@dataclass
class Manifest:
    """A dataset manifest (the JSON content) and where it lives."""

    data: dict[str, Any]
    path: Path | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read and check a ``manifest.json``."""
        return cls(read_json(path, MANIFEST_SCHEMA, "dataset manifest"), Path(path))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest (atomically)."""
        write_json_atomic(path, self.data)
        self.path = Path(path)
        return self.path

    def _pairs(self, subset: str) -> list[dict[str, Any]]:
        keys = self.data["split"][subset]
        by_key = {p["key"]: p for p in self.data["inputs"]["pairs"]}
        return [by_key[k] for k in keys]

    @property
    def train_pairs(self) -> list[dict[str, Any]]:
        """The training pairs, in the order their patches were generated."""
        return self._pairs("train")

    @property
    def test_pairs(self) -> list[dict[str, Any]]:
        """The test pairs (no patch of theirs is in the training data)."""
        return self._pairs("test")

    def statistics(self, stream: str) -> StreamStatistics:
        """Dataset statistics of ``'source'`` or ``'target'`` (training images only)."""
        return StreamStatistics.from_json(self.data["statistics"][stream])

    def normalization(self) -> Any:
        """The normalisation object the patches were made with."""
        spec = self.data["patches"]["normalization"]
        return make_normalization(
            spec, lambda: (self.statistics("source"), self.statistics("target"))
        )

    def patch_filter(self) -> Any:
        """The patch filter the patches were made with."""
        return make_filter(self.data["patches"]["filter"])

    def training_path(self) -> Path:
        """The training data file, beside the manifest."""
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / self.data["patches"]["save_file"]

    def raw_data(self) -> RawData:
        """The training pairs as :class:`RawData`, opened lazily from their paths."""
        ld = self.data["loader"]
        pairs = self.train_pairs
        xs = open_entries([p["source"] for p in pairs], ld["axes"], ld["options"])
        ys = open_entries([p["target"] for p in pairs], ld["axes"], ld["options"])
        spec = self.data["patches"].get("mask")
        return training_raw_data(xs, ys, open_mask_list(xs, ys, ld["axes"], spec, ld["options"]))


def manifest_inputs(
    pair_by: str, pairs: list[Pair], excluded: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest's ``inputs``: how the pairs were made, the pairs and the excluded keys."""
    return {
        "pair_by": pair_by,
        "image_axes": pairs[0][1].axes,
        "pairs": [
            {"key": k, "source": record_entry(s), "target": record_entry(t)} for k, s, t in pairs
        ],
        "excluded": excluded,
    }


def manifest_data(
    name: str,
    index: str,
    loader: dict[str, Any],
    inputs: dict[str, Any],
    split: dict[str, Any],
    stats: tuple[StreamStatistics, StreamStatistics],
    n_train: int,
    patches: dict[str, Any],
    preview: Path | None,
) -> dict[str, Any]:
    """The manifest's content, with its ``dataset_id``."""
    data = {
        "schema": MANIFEST_SCHEMA,
        "caredask_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "name": name,
        "index": index,
        "loader": loader,
        "inputs": inputs,
        "split": split,
        "statistics": {
            "computed_on": "train",
            "images": n_train,
            "source": stats[0].to_json(),
            "target": stats[1].to_json(),
        },
        "patches": patches,
        "preview": None if preview is None else preview.name,
    }
    data["dataset_id"] = _dataset_id(data)
    return data


def _dataset_id(data: dict[str, Any]) -> str:
    ids = [(p["source"]["id"], p["target"]["id"]) for p in data["inputs"]["pairs"]]
    core = {"ids": ids, "split": data["split"], "patches": data["patches"]}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]
