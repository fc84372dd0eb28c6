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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import FormatError, InputError, SourceNotFoundError
from ..loaders import LazyImage, open_images
from ..loaders.bioimage import VENDOR_PLUGINS
from ..loaders.discover import is_zarr_path, list_folder, matches
from ..loaders.registry import _ensure_builtins

__all__ = [
    "INDEX_SCHEMA",
    "ImageRecord",
    "Index",
    "Screening",
    "Unit",
    "build_index",
    "expand_sources",
    "unit_digest",
    "unit_signature",
]

INDEX_SCHEMA = "caredask.index/1"
DEFAULT_SUFFIXES = tuple(dict.fromkeys((".tif", ".tiff", ".czi", ".zarr", *VENDOR_PLUGINS)))
"""What a folder listing picks up when no pattern is given (case-insensitive suffixes; vendor
formats such as ``.dv``, ``.nd2``, ``.lif`` are read through bioio)."""
_ID_DIGITS = 16


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ImageRecord:
    """One image (or one unusable unit) of the index.

    Attributes
    ----------
    id : str or None
        Content-based id (``None`` when the unit could not be read at all).
    path : str
        Absolute path of the unit (file or store directory).
    status : str
        ``'ok'`` or ``'rejected'``.
    reason : str or None
        Why the image was rejected.
    image : int or None
        Position of the image in its unit (``open_images`` order).
    name, source : str or None
        The loader's name and source of the image.
    shape, axes, dtype : metadata as caredask reads it
    frames : int or None
        Length of the ``T`` axis, if any.
    channels : int
        Length of the ``C`` axis (1 without one).
    size, mtime_ns : int
        The unit's signature when it was hashed.
    sha256 : str or None
        Full digest of the unit.
    """

    id: str | None
    path: str
    status: str
    reason: str | None = None
    image: int | None = None
    name: str | None = None
    source: str | None = None
    shape: tuple[int, ...] | None = None
    axes: str | None = None
    dtype: str | None = None
    frames: int | None = None
    channels: int = 1
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the image passed screening."""
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The record as JSON types."""
        d = asdict(self)
        d["shape"] = None if self.shape is None else list(self.shape)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageRecord:
        """Inverse of :meth:`to_json`."""
        d = dict(d)
        if d.get("shape") is not None:
            d["shape"] = tuple(int(s) for s in d["shape"])
        return cls(**d)


@dataclass(frozen=True)
class Screening:
    """What an image must satisfy to be accepted (``None``: not checked).

    Attributes
    ----------
    ndim : int, optional
        Number of dimensions.
    patch_size : tuple of int, optional
        One entry per axis; every image must be at least this large.
    min_frames : int, optional
        Minimum length of the ``T`` (frame) axis, which must then exist.
    """

    ndim: int | None = None
    patch_size: tuple[int, ...] | None = None
    min_frames: int | None = None

    def reason(self, img: LazyImage) -> str | None:
        """Why ``img`` fails screening, or ``None`` when it passes."""
        shape, axes = tuple(int(s) for s in img.data.shape), img.axes
        if self.ndim is not None and len(shape) != self.ndim:
            return f"has {len(shape)} dimensions {shape} (axes {axes}), expected {self.ndim}"
        ps = self.patch_size
        if ps is not None and len(ps) != len(shape):
            return f"patch_size {ps} has {len(ps)} entries but the image has axes {axes} {shape}"
        if ps is not None and any(d < p for d, p in zip(shape, ps, strict=True)):
            return f"shape {shape} (axes {axes}) is smaller than the patch size {ps}"
        if self.min_frames is not None:
            if "T" not in axes:
                return f"no T (frame) axis in axes {axes}; frames cannot be counted"
            if shape[axes.index("T")] < self.min_frames:
                return f"{shape[axes.index('T')]} frames, fewer than min_frames={self.min_frames}"
        return None

    def to_json(self) -> dict[str, Any]:
        """The screening parameters as JSON types."""
        return {
            "ndim": self.ndim,
            "patch_size": None if self.patch_size is None else list(self.patch_size),
            "min_frames": self.min_frames,
        }


# --------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """One input unit: ``path`` (absolute) and its path ``rel`` relative to the given root."""

    path: str
    rel: str


def _listing_filter(pattern: str | None) -> Callable[[Path], bool]:
    if pattern is None:
        return lambda p: p.name.lower().endswith(DEFAULT_SUFFIXES)
    return lambda p: matches(p.name, pattern)


def expand_sources(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    pattern: str | None = None,
    recursive: bool = False,
) -> list[Unit]:
    """The units of some sources: files, store directories, and the matching entries of folders.

    Parameters
    ----------
    sources : path or sequence of paths
        Files, Zarr stores, folders (listed in natural order) or URIs.
    pattern : str, optional
        Glob pattern of the entries taken from folders (default: :data:`DEFAULT_SUFFIXES`:
        ``.tif``, ``.tiff``, ``.czi``, ``.zarr`` and the vendor formats bioio reads, any case).
        Explicitly named files are always taken.
    recursive : bool
        Descend into sub-folders (not into stores).

    Raises
    ------
    SourceNotFoundError
        A named path that does not exist.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    units: list[Unit] = []
    for s in sources:
        text = os.fspath(s)
        if "://" in text:
            units.append(Unit(text, text.rstrip("/").rsplit("/", 1)[-1]))
            continue
        p = Path(text).expanduser().absolute()
        if not p.exists():
            raise SourceNotFoundError(
                f"{text}: no such file or directory; check the path (relative paths are taken "
                f"from {os.getcwd()})"
            )
        if p.is_dir() and not is_zarr_path(p):
            listed = list_folder(p, _listing_filter(pattern), recursive=recursive, stores=True)
            units.extend(Unit(str(f), f.relative_to(p).as_posix()) for f in listed)
        else:
            units.append(Unit(str(p), p.name))
    seen: set[str] = set()
    return [u for u in units if not (u.path in seen or seen.add(u.path))]  # type: ignore[func-returns-value]


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

    def for_unit(self, path: str) -> list[ImageRecord]:
        """The records of one unit (absolute path)."""
        return [r for r in self.records if r.path == path]

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


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary sibling and ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | os.PathLike[str], schema: str, what: str) -> dict[str, Any]:
    """Read a caredask JSON file and check its ``schema`` (same family, same major version)."""
    p = Path(path)
    if not p.is_file():
        raise SourceNotFoundError(f"{p}: no such {what} file; check the path")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise FormatError(
            f"{p}: not a readable {what} file ({e}); pass a file caredask wrote"
        ) from e
    found = data.get("schema") if isinstance(data, dict) else None
    if found != schema:
        raise FormatError(
            f"{p}: schema {found!r} is not {schema!r}; pass a {what} file written by this "
            "version of caredask (or rebuild it)"
        )
    return data


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
    if "://" in unit:
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


def _previous(index_path: Path | None) -> Index | None:
    if index_path is None or not index_path.exists():
        return None
    return Index.load(index_path)


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
    params = {
        "axes": axes,
        "options": json.loads(json.dumps(options, default=str)),
        "screening": screening.to_json(),
        "pattern": pattern,
        "recursive": recursive,
    }
    prev = _previous(ipath)
    by_unit: dict[str, list[ImageRecord]] = {}
    for r in prev.records if prev else []:
        by_unit.setdefault(r.path, []).append(r)
    same = prev is not None and _same_screening(prev.params, params)
    n = workers or min(4, os.cpu_count() or 1)
    # The registry loads its loaders on first use without a lock: load them here, once.
    _ensure_builtins()
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        results = list(
            pool.map(
                lambda u: _index_unit(
                    u.path, by_unit.get(u.path, []), same, axes, options, screening
                ),
                units,
            )
        )
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
