"""Source metadata (pixel sizes, channel names) in the provenance of a ``.zarr`` training store.

The loaders put what a format says beyond pixels into :attr:`LazyImage.metadata`; the
:class:`~caredask.RawData` constructors collect it per source.  After training data were
written to a caredask Zarr store, :func:`record_source_metadata` merges it into the store's
provenance record as ``attrs['caredask']['source_metadata']`` (source -> metadata).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from ..errors import FormatError, InputError
from .store_files import STORE_KIND

__all__ = ["check_json", "jsonable", "record_source_metadata", "source_metadata"]


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths in ``value`` to JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def check_json(record: dict[str, Any]) -> dict[str, Any]:
    """Return ``record`` converted to JSON types; raise InputError if it cannot be."""
    out = jsonable(record)
    try:
        json.dumps(out, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise InputError(
            f"provenance attributes must be JSON-serialisable ({e}); pass numbers, strings, "
            "lists and dicts"
        ) from None
    return out


def source_metadata(raw_data: Any) -> dict[str, Any]:
    """Metadata per source that a caredask ``RawData`` collected (empty for other generators)."""
    return dict(getattr(raw_data.generator, "_caredask_metadata", {}) or {})


def record_source_metadata(store: str | os.PathLike[str], raw_data: Any) -> dict[str, Any]:
    """Add the sources' metadata to a complete caredask training data store.

    Parameters
    ----------
    store : path
        A ``.zarr`` store written by :func:`caredask.generate_training_data`.
    raw_data : RawData
        The pairs it was made from (after the run, so every image was opened).

    Returns
    -------
    dict
        What was recorded (source -> metadata); nothing is written when it is empty.

    Raises
    ------
    FormatError
        ``store`` is not a complete caredask training data store.
    """
    meta = json.loads(json.dumps(source_metadata(raw_data), default=str))
    if not meta:
        return meta
    group = zarr.open_group(os.fspath(store), mode="r+")
    attrs = dict(group.attrs)
    record = attrs.get("caredask")
    if not isinstance(record, dict) or record.get("kind") != STORE_KIND:
        raise FormatError(
            f"{store}: not a caredask training data store (no caredask provenance record); "
            "pass the .zarr written by generate_training_data"
        )
    group.attrs["caredask"] = {**record, "source_metadata": meta}
    return meta
