"""An index of input images: stable content-based ids, metadata and screening results.

One :class:`ImageRecord` per image of every input *unit* (a file, or a Zarr store directory).

Ids.  A unit's ``sha256`` is the SHA-256 of its full content, streamed: the file's bytes, or for
a directory store the sorted ``(relative path, size, sha256 of the file)`` of every file in it.
Nothing but the content enters, so copying, moving or renaming data keeps its id, and any
change of a byte changes it.  An image's ``id`` is the first 16 hex digits of its unit's digest,
with ``-k`` appended for the ``k``-th image of a unit holding several (CZI scenes, series of a
store).  Identical files share an id (duplicates are visible and are kept on one side of a
train/test split).  Remote URIs are not hashed (reading them whole would defeat the lazy
loaders): they are recorded as rejected with that reason.

Incremental rebuild.  Hashing reads every byte once.  When an index file exists, a unit whose
``(path, size, mtime_ns)`` is unchanged keeps its digest without being read again (directory
stores: total size and the newest mtime of any file or sub-directory, so added, removed or
rewritten chunks count as a change); its records are reused as they are when the screening
parameters are unchanged too, else only its metadata are opened again.

Screening.  A unit or image that cannot be used is recorded with ``status='rejected'`` and a
``reason`` (unreadable, not an image, wrong number of dimensions, axes that do not fit, fewer
frames than asked, smaller than the patch size), never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..loaders import open_images
from ..loaders.discover import is_uri
from ..loaders.registry import _ensure_builtins
from .records import ImageRecord, Screening, read_json, write_json_atomic
from .units import DEFAULT_SUFFIXES, Unit, expand_sources

__all__ = [
    "DEFAULT_SUFFIXES",
    "INDEX_SCHEMA",
    "ImageRecord",
    "Index",
    "Screening",
    "Unit",
    "build_index",
    "expand_sources",
    "read_json",
    "unit_digest",
    "unit_signature",
    "write_json_atomic",
]

INDEX_SCHEMA = "caredask.index/1"
_ID_DIGITS = 16


# --------------------------------------------------------------------------- hashing


def unit_signature(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(size, mtime_ns)``; for a directory: total size, newest mtime of anything inside."""
    p = Path(path)
    st = p.stat()
    if not p.is_dir():
        return st.st_size, st.st_mtime_ns
    size, mtime = 0, st.st_mtime_ns
    for dirpath, dirnames, filenames in os.walk(p):
        mtime = max(mtime, os.stat(dirpath).st_mtime_ns)
        for f in filenames:
            fs = os.stat(os.path.join(dirpath, f))
            size += fs.st_size
            mtime = max(mtime, fs.st_mtime_ns)
        dirnames.sort()
    return size, mtime


def _file_sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def unit_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a unit's full content (a file's bytes, or a directory tree; see module doc)."""
    p = Path(path)
    if not p.is_dir():
        return _file_sha256(str(p))
    h = hashlib.sha256(b"caredask-tree/1\0")
    files = sorted((Path(d) / f).relative_to(p).as_posix() for d, _, fs in os.walk(p) for f in fs)
    for rel in files:
        f = p / rel
        h.update(f"{rel}\0{f.stat().st_size}\0".encode())
        h.update(bytes.fromhex(_file_sha256(str(f))))
    return h.hexdigest()


def _image_id(digest: str, k: int, n: int) -> str:
    return digest[:_ID_DIGITS] if n == 1 else f"{digest[:_ID_DIGITS]}-{k}"


# --------------------------------------------------------------------------- the index


@dataclass
class Index:
    """Records of all images of some sources, with the parameters they were screened with.

    Attributes
    ----------
    records : list of ImageRecord
        In unit order, then image order within a unit.
    params : dict
        ``axes``, loader ``options``, ``screening``, ``pattern`` and ``recursive``.
    path : Path or None
        Where the index was loaded from or saved to.
    hashed : list of str
        Units whose content was hashed by the build that made this object.
    removed : list of str
        Units of the previous index that are no longer among the sources.
    """

    records: list[ImageRecord]
    params: dict[str, Any]
    path: Path | None = None
    hashed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> list[ImageRecord]:
        """The records that passed screening."""
        return [r for r in self.records if r.ok]

    @property
    def rejected(self) -> list[ImageRecord]:
        """The records that failed screening, each with its reason."""
        return [r for r in self.records if not r.ok]

    def by_unit(self) -> dict[str, list[ImageRecord]]:
        """The records grouped by unit (absolute path), in index order."""
        out: dict[str, list[ImageRecord]] = {}
        for r in self.records:
            out.setdefault(r.path, []).append(r)
        return out

    def to_json(self) -> dict[str, Any]:
        """The index file's content."""
        return {
            "schema": INDEX_SCHEMA,
            "caredask_version": __version__,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "hash": {"algorithm": "sha256", "content": "full", "id_digits": _ID_DIGITS},
            "params": self.params,
            "records": [r.to_json() for r in self.records],
        }

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the index as JSON (atomically) to ``path`` or where it came from."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise InputError("Index.save: no path given and the index has none; pass a path")
        write_json_atomic(target, self.to_json())
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Index:
        """Read an index file written by :meth:`save`."""
        data = read_json(path, INDEX_SCHEMA, "index")
        records = [ImageRecord.from_json(r) for r in data.get("records", [])]
        return cls(records, dict(data.get("params", {})), Path(path))


def _records_of(
    unit: str,
    digest: str,
    sig: tuple[int, int],
    axes: str | None,
    options: dict[str, Any],
    screening: Screening,
) -> list[ImageRecord]:
    def record(id_: str, reason: str | None, **meta: Any) -> ImageRecord:
        status = "ok" if reason is None else "rejected"
        return ImageRecord(
            id_, unit, status, reason, size=sig[0], mtime_ns=sig[1], sha256=digest, **meta
        )

    try:
        images = open_images(unit, axes, **options)
    except Exception as e:  # any failure to read is a screening result, not a crash
        return [record(digest[:_ID_DIGITS], f"not readable as an image ({type(e).__name__}: {e})")]
    out = []
    for k, img in enumerate(images):
        shape = tuple(int(s) for s in img.data.shape)
        out.append(
            record(
                _image_id(digest, k, len(images)),
                screening.reason(img),
                image=k,
                name=img.name,
                source=img.source,
                shape=shape,
                axes=img.axes,
                dtype=str(img.data.dtype),
                frames=shape[img.axes.index("T")] if "T" in img.axes else None,
                channels=shape[img.axes.index("C")] if "C" in img.axes else 1,
            )
        )
    return out


def _index_unit(
    unit: str,
    previous: list[ImageRecord],
    same_params: bool,
    axes: str | None,
    options: dict[str, Any],
    screening: Screening,
) -> tuple[list[ImageRecord], bool]:
    """Records of one unit and whether it was hashed."""
    if is_uri(unit):
        reason = "remote sources are not indexed (content hashing needs local files)"
        return [ImageRecord(None, unit, "rejected", reason)], False
    try:
        sig = unit_signature(unit)
    except OSError as e:
        return [ImageRecord(None, unit, "rejected", f"cannot stat ({e})")], False
    old = previous[0] if previous else None
    if old is not None and old.sha256 and (old.size, old.mtime_ns) == sig:
        if same_params:
            return previous, False
        return _records_of(unit, old.sha256, sig, axes, options, screening), False
    try:
        digest = unit_digest(unit)
    except OSError as e:
        return [ImageRecord(None, unit, "rejected", f"unreadable ({e})")], False
    return _records_of(unit, digest, sig, axes, options, screening), True


def _previous(index_path: Path | None) -> tuple[dict[str, list[ImageRecord]], dict[str, Any]]:
    """The records of an existing index file by unit, and its parameters (empty without one)."""
    if index_path is None or not index_path.exists():
        return {}, {}
    prev = Index.load(index_path)
    return prev.by_unit(), prev.params


def _index_units(
    units: list[Unit],
    by_unit: dict[str, list[ImageRecord]],
    same: bool,
    workers: int | None,
    axes: str | None,
    options: dict[str, Any],
    screening: Screening,
) -> list[tuple[list[ImageRecord], bool]]:
    """:func:`_index_unit` of every unit, on a few threads, in unit order."""
    n = workers or min(4, os.cpu_count() or 1)
    # The registry loads its loaders on first use without a lock: load them here, once.
    _ensure_builtins()
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        return list(
            pool.map(
                lambda u: _index_unit(
                    u.path, by_unit.get(u.path, []), same, axes, options, screening
                ),
                units,
            )
        )


def build_index(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    axes: str | None = None,
    *,
    index_path: str | os.PathLike[str] | None = None,
    screening: Screening | None = None,
    pattern: str | None = None,
    recursive: bool = False,
    workers: int | None = None,
    **options: Any,
) -> Index:
    """Index every image of ``sources``, reusing an existing index file incrementally.

    Parameters
    ----------
    sources : path or sequence of paths
        Files, stores and folders (see :func:`expand_sources`).
    axes : str, optional
        Axes of every image (passed to :func:`caredask.open_images`); from metadata if omitted.
    index_path : path, optional
        Index file: read first (unchanged units are not hashed again), written afterwards.
    screening : Screening, optional
        Acceptance criteria (default: only readability).
    pattern, recursive
        Folder listing (see :func:`expand_sources`).
    workers : int, optional
        Threads hashing units concurrently (default ``min(4, cpu_count)``).
    **options
        Loader options for :func:`caredask.open_images` (JSON-serialisable, e.g. ``series=1``).

    Returns
    -------
    Index
        With ``hashed`` (units read this time) and ``removed`` (units no longer present).

    Raises
    ------
    SourceNotFoundError
        A named source that does not exist.
    FormatError
        ``index_path`` exists but is not a caredask index.
    """
    screening = screening or Screening()
    units = expand_sources(sources, pattern, recursive)
    ipath = None if index_path is None else Path(index_path)
    params = {"axes": axes, "options": json.loads(json.dumps(options, default=str))}
    params |= {"screening": screening.to_json(), "pattern": pattern, "recursive": recursive}
    by_unit, old_params = _previous(ipath)
    same = bool(old_params) and _same_screening(old_params, params)
    results = _index_units(units, by_unit, same, workers, axes, options, screening)
    records = [r for recs, _ in results for r in recs]
    hashed = [u.path for u, (_, h) in zip(units, results, strict=True) if h]
    present = {u.path for u in units}
    removed = [p for p in by_unit if p not in present]
    index = Index(records, params, ipath, hashed, removed)
    if ipath is not None:
        index.save(ipath)
    return index


def _same_screening(old: dict[str, Any], new: dict[str, Any]) -> bool:
    keys = ("axes", "options", "screening")
    return all(old.get(k) == new.get(k) for k in keys)
