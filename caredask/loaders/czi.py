"""Lazy Zeiss CZI loader on pylibCZIrw: one image per scene, read tile by tile.

pylibCZIrw (Zeiss's libCZI wrapper, the optional ``czi`` extra: ``pip install caredask[czi]``)
reads regions of interest in global plane coordinates and decodes only the subblocks a region
touches.  Its reader cannot be pickled, so every dask task opens the file itself
(``pyczi.open_czi(path)``), reads the ROIs of its block (scene origin + offset) for the planes
(C, Z or T) the block covers, and closes it.

Axes follow CAREamics' rule: the requested axes are one of ``SCYX``, ``SCZYX``, ``SCTYX`` (S
and C always present, Z and T mutually exclusive; the depth axis must have more than one plane
in the file).  Scenes are not stacked on S: each scene is its own :class:`LazyImage`, named
``file.czi@<scene>``, and its data come WITHOUT the S axis, i.e. with axes ``CYX``, ``CZYX`` or
``CTYX``.  Only if the file has planes along a dimension the axes do not name (e.g. Z planes
read with ``SCYX``, or T points read with ``SCZYX``) do those planes form a leading ``S`` axis
(``SCYX``, ...; C-order over T, Z and the rarer R, I, H, V, B dimensions), as CAREamics does.
Pixels keep the file's type (Gray8 -> uint8, Gray16 -> uint16, Gray32Float -> float32);
colour (Bgr*) files are refused.  Plane ranges come from the full-resolution subblocks (so
they may start at an index other than 0); parts of a scene rectangle or plane that no
subblock covers read as 0.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..axes import axes_check_and_normalize
from ..errors import (
    AxesError,
    CaredaskError,
    FormatError,
    InputError,
    MissingDependencyError,
    SourceNotFoundError,
)
from .base import LazyImage, file_identity, reader_to_dask
from .registry import register_loader

__all__ = [
    "CZI_AXES",
    "CZI_OPTIONS",
    "DEFAULT_TILE",
    "CziSceneReader",
    "czi_axes",
    "open_czi",
    "probe_czi",
]

CZI_AXES = ("SCYX", "SCZYX", "SCTYX")
"""The axes strings a CZI may be opened with."""
CZI_OPTIONS = frozenset({"chunks"})
DEFAULT_TILE = 512
"""Default dask chunk edge in Y and X (one plane per chunk)."""
_PIXEL_DTYPES = {"Gray8": "uint8", "Gray16": "uint16", "Gray32Float": "float32"}
_PLANE_DIMS = ("T", "Z", "C", "R", "I", "H", "V", "B")  # libCZI plane dimensions, in order


def _pyczi(source: Any) -> Any:
    """pylibCZIrw's ``czi`` module, or a :class:`MissingDependencyError` naming ``source``."""
    try:
        from pylibCZIrw import czi as pyczi
    except ImportError as e:
        raise MissingDependencyError(
            f"{source}: reading CZI files needs pylibCZIrw, which is not installed; install it "
            "with `pip install caredask[czi]` (or `pip install pylibCZIrw`)"
        ) from e
    return pyczi


# --------------------------------------------------------------------------- reader


@dataclass
class CziSceneReader:
    """Picklable reader of one CZI scene; opens the file on every ``__getitem__``.

    Attributes
    ----------
    path : str
        The CZI file.
    scene : int or None
        Scene index (``None`` for a file without scenes).
    origin : tuple of int
        ``(x, y)`` of the scene's bounding rectangle in global coordinates.
    planes : tuple of tuple of dict
        For each leading (non-YX) axis of the image, the plane coordinates of each index,
        e.g. ``({'C': 0}, {'C': 1})``; a block's plane is the union over its axes.
    shape : tuple of int
        Image shape: the leading axes, then Y and X.
    dtype : numpy.dtype
        Pixel type.
    pixel_type : str
        libCZI's name of it (``'Gray16'``, ...), passed to every read.
    """

    path: str
    scene: int | None
    origin: tuple[int, int]
    planes: tuple[tuple[dict[str, int], ...], ...]
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    pixel_type: str = "Gray16"
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        idx, squeeze = _expand_key(key, self.shape)
        ys, xs = idx[-2], idx[-1]
        out = np.zeros([len(i) for i in idx[:-2]] + [len(ys), len(xs)], dtype=self.dtype)
        if out.size:
            y0, x0 = int(ys.min()), int(xs.min())
            roi = (self.origin[0] + x0, self.origin[1] + y0)
            size = (int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1)
            where = f"scene {self.scene}, pixels {key}"
            with _reading(self.path, where) as reader:
                for pos in np.ndindex(*out.shape[:-2]):
                    plane = self._plane([int(i[p]) for i, p in zip(idx, pos, strict=False)])
                    tile = reader.read(
                        roi=(*roi, *size), plane=plane, scene=self.scene, pixel_type=self.pixel_type
                    )
                    out[pos] = tile[..., 0][np.ix_(ys - y0, xs - x0)]
        return out[tuple(0 if s else slice(None) for s in squeeze)]

    def _plane(self, indices: list[int]) -> dict[str, int]:
        plane: dict[str, int] = {}
        for options, i in zip(self.planes, indices, strict=False):
            plane.update(options[i])
        return plane


def _expand_key(key: Any, shape: tuple[int, ...]) -> tuple[list[np.ndarray], list[bool]]:
    """Per dimension, the selected indices (ascending order kept) and whether it was an int."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    idx = [np.atleast_1d(np.arange(n)[k]) for n, k in zip(shape, key, strict=True)]
    squeeze = [isinstance(k, int | np.integer) for k in key]
    return idx, squeeze


@contextmanager
def _reading(path: str, what: str = "") -> Iterator[Any]:
    """``pyczi.open_czi`` with caredask errors (the file may have changed since opening)."""
    pyczi = _pyczi(path)
    try:
        with pyczi.open_czi(path) as reader:
            yield reader
    except CaredaskError:
        raise
    except Exception as e:
        raise FormatError(
            f"{path}: reading the CZI{' (' + what + ')' if what else ''} failed "
            f"({type(e).__name__}: {e}); the file is damaged, "
            "truncated or changed since it was opened; copy or export it again"
        ) from e


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class _CziInfo:
    ranges: dict[str, tuple[int, int]]  # plane dimension -> (first index, count)
    scenes: dict[int | None, tuple[int, int, int, int]]  # scene -> (x, y, w, h)
    pixel_types: frozenset[str]


def _subblock_info(reader: Any) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """Plane ranges and pixel types of the full-resolution subblocks."""
    seen: dict[str, list[int]] = {}
    types: set[str] = set()

    def visit(_: int, sb: Any) -> bool:
        if abs(sb.get_zoom() - 1.0) < 1e-6:
            for dim, value in sb.coordinate.to_dict().items():
                if dim in _PLANE_DIMS:
                    seen.setdefault(dim, []).append(int(value))
            types.add(sb.pixelType.name)
        return True

    reader.enumerate_subblocks(visit)
    ranges = {d: (min(v), max(v) - min(v) + 1) for d, v in seen.items()}
    return ranges, types


def _inspect(path: Path) -> _CziInfo:
    with _reading(str(path)) as reader:
        ranges, types = _subblock_info(reader)
        rects = reader.scenes_bounding_rectangle_no_pyramid
        if not rects:
            r = reader.total_bounding_rectangle_no_pyramid
            rects = {None: r}
        scenes = {s: (r.x, r.y, r.w, r.h) for s, r in sorted(rects.items(), key=_scene_key)}
    if not types:
        raise FormatError(f"{path}: the CZI holds no image data (no subblocks)")
    return _CziInfo(ranges, scenes, frozenset(types))


def _scene_key(item: tuple[int | None, Any]) -> int:
    return -1 if item[0] is None else int(item[0])


def _pixel_type(path: Path, types: frozenset[str]) -> str:
    bad = sorted(t for t in types if t not in _PIXEL_DTYPES)
    if bad:
        raise FormatError(
            f"{path}: unsupported CZI pixel type {', '.join(bad)} (colour/RGB or other); "
            "caredask reads grey-level CZIs (Gray8, Gray16, Gray32Float): export the channels "
            "as grey levels (e.g. in ZEN 'Split channels', or Fiji: Image > Color > Split "
            "Channels, saved as TIFF)"
        )
    if len(types) > 1:
        raise FormatError(
            f"{path}: the channels mix pixel types {sorted(types)}; export them with one "
            "pixel type (e.g. all Gray16)"
        )
    return next(iter(types))


def czi_axes(path: Path | str, axes: str | None, ranges: dict[str, tuple[int, int]]) -> str:
    """Check (or, when ``None``, choose) the requested CZI axes; return them upper-cased.

    Without ``axes``: ``SCZYX`` if the file has several Z planes, ``SCTYX`` if several T
    points, ``SCYX`` if neither (both: an :class:`AxesError` asking to choose).
    """
    size = {d: ranges.get(d, (0, 1))[1] for d in "ZT"}
    if axes is None:
        if size["Z"] > 1 and size["T"] > 1:
            raise AxesError(
                f"{path}: the CZI has {size['Z']} Z planes and {size['T']} T points; pass "
                "axes='SCZYX' (T becomes samples) or axes='SCTYX' (Z becomes samples)"
            )
        return "SCZYX" if size["Z"] > 1 else "SCTYX" if size["T"] > 1 else "SCYX"
    try:
        norm = axes_check_and_normalize(axes)
    except AxesError:
        norm = str(axes)
    if norm not in CZI_AXES:
        raise AxesError(
            f"{path}: axes {axes!r} are not valid for a CZI; use one of {', '.join(CZI_AXES)} "
            "(S and C always present, Z and T mutually exclusive, in this order)"
        )
    depth = norm[2] if len(norm) == 5 else None
    if depth is not None and size[depth] <= 1:
        raise AxesError(
            f"{path}: axes {norm!r} ask for {depth} as the depth axis, but the CZI has "
            f"{size[depth]} {depth} plane(s); use one of {', '.join(CZI_AXES)} that fits "
            f"(the file has {size['Z']} Z plane(s) and {size['T']} T point(s))"
        )
    return norm


def _leading(
    axes: str, ranges: dict[str, tuple[int, int]]
) -> tuple[str, tuple[tuple[dict[str, int], ...], ...]]:
    """Image axes without S (unless other planes exist) and the plane options per axis."""
    depth = axes[2] if len(axes) == 5 else ""
    rng = {d: ranges.get(d, (0, 1)) for d in _PLANE_DIMS}
    other = [d for d in _PLANE_DIMS if d not in ("C", depth) and rng[d][1] > 1]
    fixed = {d: rng[d][0] for d in _PLANE_DIMS if d not in ("C", depth, *other) and d in ranges}

    def options(dims: list[str]) -> tuple[dict[str, int], ...]:
        spans = [range(rng[d][0], rng[d][0] + rng[d][1]) for d in dims]
        combos = itertools.product(*spans)
        return tuple(dict(fixed, **dict(zip(dims, v, strict=True))) for v in combos)

    planes = [options(other)] if other else []
    planes += [options(["C"])] + ([options([depth])] if depth else [])
    return ("S" if other else "") + "C" + depth + "YX", tuple(planes)


def _chunks(shape: tuple[int, ...], chunks: Any) -> Any:
    if chunks is not None:
        return chunks
    return (1,) * (len(shape) - 2) + tuple(min(DEFAULT_TILE, n) for n in shape[-2:])


# --------------------------------------------------------------------------- loader


def probe_czi(source: Any, options: dict[str, Any]) -> bool:
    """Registry probe: a path ending in ``.czi`` (any case), or a list of only such paths."""
    if isinstance(source, list | tuple):
        return len(source) > 0 and all(probe_czi(s, options) for s in source)
    if not isinstance(source, str | os.PathLike) or isinstance(source, bytes):
        return False
    return "://" not in os.fspath(source) and os.fspath(source).lower().endswith(".czi")


def _open_file(path: Path, axes: str | None, chunks: Any) -> list[LazyImage]:
    if not path.is_file():
        raise SourceNotFoundError(
            f"{path}: no such CZI file; check the path (relative paths are taken from "
            f"{os.getcwd()})"
        )
    ident = file_identity(path)
    info = _inspect(path)
    pixel_type = _pixel_type(path, info.pixel_types)
    dtype = np.dtype(_PIXEL_DTYPES[pixel_type])
    req = czi_axes(path, axes, info.ranges)
    img_axes, planes = _leading(req, info.ranges)
    images = []
    for scene, (x, y, w, h) in info.scenes.items():
        shape = (*(len(p) for p in planes), h, w)
        reader = CziSceneReader(ident[0], scene, (x, y), planes, shape, dtype, pixel_type)
        spec = _chunks(shape, chunks)
        data = reader_to_dask(reader, spec, (ident, scene, req, spec), prefix="read-czi")
        name = path.name if scene is None else f"{path.name}@{scene}"
        images.append(LazyImage(data, img_axes, name, source=f"{ident[0]}@{scene}"))
    return images


def open_czi(source: Any, axes: str | None = None, **options: Any) -> list[LazyImage]:
    """Open every scene of one or more CZI files lazily.

    Parameters
    ----------
    source : str, path or list of them
        ``.czi`` file(s).
    axes : str, optional
        ``'SCYX'``, ``'SCZYX'`` or ``'SCTYX'`` (case-insensitive); chosen from the file's
        Z/T sizes when omitted.  The images returned have the axes WITHOUT ``S``
        (``'CYX'``, ``'CZYX'``, ``'CTYX'``): one image per scene, see the module docstring.
    **options
        ``chunks``: dask chunks of each scene image; default one plane and at most
        ``DEFAULT_TILE`` x ``DEFAULT_TILE`` pixels per chunk.

    Returns
    -------
    list of LazyImage
        Per file in order, one per scene in scene order, named ``file.czi@<scene>``; no pixel
        is read.

    Raises
    ------
    SourceNotFoundError
        A missing file.
    FormatError
        A corrupt file, or an unsupported (e.g. RGB) pixel type.
    AxesError
        Axes that are not one of ``SCYX``, ``SCZYX``, ``SCTYX`` or do not fit the file.
    InputError
        Unknown options.
    MissingDependencyError
        pylibCZIrw not installed (an ``ImportError``).
    """
    unknown = sorted(set(options) - CZI_OPTIONS)
    if unknown:
        raise InputError(
            f"{source}: unknown option(s) {unknown} for CZI files; use {sorted(CZI_OPTIONS)}"
        )
    sources = list(source) if isinstance(source, list | tuple) else [source]
    _pyczi(sources[0] if sources else source)
    images: list[LazyImage] = []
    for s in sources:
        images.extend(_open_file(Path(s).expanduser(), axes, options.get("chunks")))
    return images


register_loader("czi", probe_czi, open_czi)
