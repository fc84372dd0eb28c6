"""What the index records of each image: :class:`ImageRecord`, and the criteria it was screened
with: :class:`Screening`; also the JSON file helpers the index and manifests share.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError, SourceNotFoundError
from ..loaders import LazyImage

__all__ = ["ImageRecord", "Screening", "read_json", "write_json_atomic"]


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
