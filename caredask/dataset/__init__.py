"""Dataset management: image index, manifests with a split by image, dataset statistics, previews.

* :func:`build_index`: content-based ids, metadata and screening of every input image,
  rebuilt incrementally (:mod:`caredask.dataset.index`);
* :func:`create_dataset` / :func:`rebuild`: seeded train/test split by image, exact per-channel
  statistics of the training images, training data and a versioned manifest that regenerates
  them bit-identically (:mod:`caredask.dataset.manifest`);
* :func:`dataset_statistics` / :func:`dataset_normalization`: pooled exact statistics and
  normalisation with the dataset's percentiles (:mod:`caredask.dataset.stats`);
* :func:`write_preview`: PNG of sampled patch pairs (:mod:`caredask.dataset.preview`).

Beside them: :mod:`~caredask.dataset.units` (input units of an index),
:mod:`~caredask.dataset.records` (image records, screening, JSON files),
:mod:`~caredask.dataset.pairing` (pairs, groups, split) and :mod:`~caredask.dataset.recipe`
(what a manifest records and the objects it stands for).
"""

from __future__ import annotations

from .index import INDEX_SCHEMA, ImageRecord, Index, Screening, build_index, unit_digest
from .manifest import (
    MANIFEST_SCHEMA,
    DatasetResult,
    Manifest,
    create_dataset,
    rebuild,
    split_groups,
    training_digest,
)
from .preview import write_preview
from .stats import (
    DEFAULT_PERCENTILES,
    StreamStatistics,
    dataset_normalization,
    dataset_statistics,
)

__all__ = [
    "DEFAULT_PERCENTILES",
    "INDEX_SCHEMA",
    "MANIFEST_SCHEMA",
    "DatasetResult",
    "ImageRecord",
    "Index",
    "Manifest",
    "Screening",
    "StreamStatistics",
    "build_index",
    "create_dataset",
    "dataset_normalization",
    "dataset_statistics",
    "rebuild",
    "split_groups",
    "training_digest",
    "unit_digest",
    "write_preview",
]
