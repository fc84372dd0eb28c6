"""Vendor microscope formats (DeltaVision, ND2, LIF, VSI, ...) through bioio reader plugins.

bioio (``pip install caredask[bioio]``) gives one API over a reader plugin per format.  By
default this loader takes the files whose extension no native loader owns (see
:data:`VENDOR_PLUGINS`); ``open_images(path, reader="bioio")`` sends any file to it, also
TIFF, OME-TIFF and CZI (which otherwise go to tifffile and pylibCZIrw).

Opening reads metadata only.  The dask graph holds a small picklable
:class:`BioioSceneReader` (path, size, mtime, plugin module, scene, shapes), never an open
reader: each task re-opens the file through the same plugin (cached per thread and file
version), takes the part of bioio's lazy ``dask_data`` its block covers and computes it there.
A block therefore reads exactly the plugin's own storage units it overlaps - whole planes for
DeltaVision, ND2 and LIF, tifffile's strips/tiles for (OME-)TIFF, tile blocks for VSI.
Default blocks are whole multiples of those units of about 32 MiB (``CHUNK_BYTES``), so a stack
stored one plane per unit is read in a few large tasks per pass, not one per plane.

Axes come from bioio's dimensions (``TCZYX``, ``S`` for RGB samples, which becomes ``C``).
Singleton dimensions are dropped unless the ``axes`` given keep them; given axes may also
reorder the dimensions.  Multi-scene files give one image per scene, named ``file@<index>``.
Physical pixel sizes (micrometres) and channel names are in :attr:`LazyImage.metadata`.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    CaredaskError,
    FormatError,
    InputError,
    MissingDependencyError,
    SourceNotFoundError,
)
from .base import LazyImage, check_unchanged, file_identity, reader_to_dask
from .bioio_axes import bioio_chunks, bioio_metadata, plan_axes
from .discover import is_uri, list_folder, matches
from .registry import register_loader

__all__ = [
    "BIOIO_EXTRA",
    "VENDOR_PLUGINS",
    "BioioSceneReader",
    "open_bioio",
    "plan_axes",
    "probe_bioio",
    "vendor_suffix",
]

VENDOR_PLUGINS: dict[str, str] = {
    ".dv": "bioio-dv",
    ".r3d": "bioio-dv",
    ".nd2": "bioio-nd2",
    ".lif": "bioio-lif",
    ".vsi": "bioio-vsi",
    ".sldy": "bioio-sldy",
    ".lsm": "bioio-tifffile",
    ".czi": "bioio-czi",
    ".ome.tif": "bioio-ome-tiff",
    ".ome.tiff": "bioio-ome-tiff",
    ".tif": "bioio-tifffile",
    ".tiff": "bioio-tifffile",
}
"""File extension -> the bioio plugin (pip package) that reads it."""
BIOIO_EXTRA = frozenset(
    {"bioio-dv", "bioio-nd2", "bioio-lif", "bioio-vsi", "bioio-czi", "bioio-ome-tiff"}
    | {"bioio-tifffile"}
)
"""Plugins that ``pip install caredask[bioio]`` installs."""
_NATIVE = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".czi")  # read natively unless reader="bioio"
_OPTIONS = frozenset({"chunks", "pattern", "right_align_axes"})
_CACHE_SIZE = 8


def vendor_suffix(path: str | os.PathLike[str]) -> str | None:
    """The key of :data:`VENDOR_PLUGINS` a file name ends with (longest first), or ``None``."""
    name = os.fspath(path).lower()
    return max((s for s in VENDOR_PLUGINS if name.endswith(s)), key=len, default=None)


# --------------------------------------------------------------------------- plugins


def _bioio(path: Path) -> Any:
    try:
        import bioio
    except ImportError as e:
        pkg = VENDOR_PLUGINS.get(vendor_suffix(path) or "", "")
        more = f" {pkg}" if pkg and pkg not in BIOIO_EXTRA else ""
        raise MissingDependencyError(
            f"{path}: reading this file needs bioio, which is not installed; run "
            f"`pip install caredask[bioio]{more}`"
        ) from e
    return bioio


@functools.cache
def _tokenize_dv_by_identity() -> None:
    """Make dask tokenise ``mrc.DVFile`` by path, size and mtime instead of by pickling it.

    bioio-dv builds its dask array with ``map_blocks`` of a bound method of an open
    ``DVFile``, which dask tokenises by pickling the object - including its memory map of the
    whole file (about 20 s for a 1 GiB stack, on every open).  The file identity determines
    the pixels just as well.
    """
    from dask.base import normalize_token
    from mrc._new import DVFile

    @normalize_token.register(DVFile)
    def _token(f: Any) -> Any:
        return ("mrc.DVFile", *file_identity(f.path))


def _reader_class(plugin: str, path: str | os.PathLike[str]) -> Any:
    """The ``Reader`` of a plugin module (``'bioio_dv'``), or a one-line install hint."""
    try:
        reader = importlib.import_module(plugin).Reader
        if plugin == "bioio_dv":
            _tokenize_dv_by_identity()
        return reader
    except ImportError as e:
        pkg = plugin.replace("_", "-")
        raise MissingDependencyError(
            f"{path}: reading {vendor_suffix(path) or 'this'} files needs the bioio plugin "
            f"{pkg}, which is not installed; run `pip install {pkg}`"
        ) from e


def _chosen_reader(path: Path) -> Any:
    """The plugin's Reader for a vendor extension; ``None`` lets bioio choose (TIFF)."""
    suffix = vendor_suffix(path)
    if suffix is None or suffix in (".tif", ".tiff"):  # OME or plain: bioio picks the plugin
        return None
    return _reader_class(VENDOR_PLUGINS[suffix].replace("-", "_"), path)


def _open_bioimage(path: str | Path, reader: Any) -> Any:
    bioio = _bioio(Path(path))
    try:
        return bioio.BioImage(os.fspath(path), reader=reader)
    except CaredaskError:
        raise
    except Exception as e:
        via = f" with {reader.__module__.split('.')[0]}" if reader is not None else ""
        raise FormatError(
            f"{path}: not readable{via} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "check that the file is complete and of the format its extension says (copy or "
            "export it again)"
        ) from e


_local = threading.local()


def _scene_data(path: str, size: int, mtime_ns: int, plugin: str, scene: int) -> Any:
    """bioio's lazy data of one scene, opened once per thread and file version."""
    cache: OrderedDict[tuple[Any, ...], Any] = _local.__dict__.setdefault("cache", OrderedDict())
    key = (path, size, mtime_ns, plugin, scene)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    bio = _open_bioimage(path, _reader_class(plugin, path))
    bio.set_scene(scene)
    cache[key] = bio.dask_data
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return cache[key]


# --------------------------------------------------------------------------- reader


@dataclass
class BioioSceneReader:
    """Picklable reader of one scene of a file through a bioio plugin.

    Attributes
    ----------
    path : str
        The file (absolute).
    size, mtime_ns : int
        The file's identity when it was opened; reads refuse a changed file.
    plugin : str
        Module of the bioio plugin (``'bioio_dv'``), imported by each task.
    scene : int
        Scene index.
    keep : tuple of int
        For each axis of this array, the bioio dimension it is (dimensions not kept are
        singletons, read at index 0).
    full_ndim : int
        Number of bioio dimensions.
    shape, dtype
        Of the array this reader exposes.
    read_chunks : tuple of int
        The plugin's own chunk per axis (what it decodes at once): the grid a region read
        costs (see :class:`~caredask.loaders.base.RegionSource`).
    """

    path: str
    size: int
    mtime_ns: int
    plugin: str
    scene: int
    keep: tuple[int, ...]
    full_ndim: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    read_chunks: tuple[int, ...] = ()
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        ints = tuple(i for i, k in enumerate(key) if isinstance(k, int | np.integer))
        key = tuple(slice(int(k), int(k) + 1) if i in ints else k for i, k in enumerate(key))
        full: list[Any] = [0] * self.full_ndim
        for k, j in zip(key, self.keep, strict=True):
            full[j] = k
        check_unchanged(self.path, self.size, self.mtime_ns)
        try:
            data = _scene_data(self.path, self.size, self.mtime_ns, self.plugin, self.scene)
            block = np.asarray(data[tuple(full)].compute(scheduler="synchronous"))
        except CaredaskError:
            raise
        except Exception as e:
            raise FormatError(
                f"{self.path}: reading pixels {key} of scene {self.scene} with {self.plugin} "
                f"failed ({type(e).__name__}: {e}); the file is damaged or truncated; copy "
                "or export it again"
            ) from e
        order = sorted(self.keep)
        block = block.transpose([order.index(j) for j in self.keep])
        return np.asarray(block.squeeze(axis=ints) if ints else block, dtype=self.dtype)


# --------------------------------------------------------------------------- loader


def _open_file(path: Path, axes: str | None, chunks: Any, right_align: bool) -> list[LazyImage]:
    if not path.is_file():
        raise SourceNotFoundError(
            f"{path}: no such file; check the path (relative paths are taken from {os.getcwd()})"
        )
    ident = file_identity(path)
    _bioio(path)  # bioio itself first: its absence is one install, not one per plugin
    bio = _open_bioimage(path, _chosen_reader(path))
    plugin = type(bio.reader).__module__.split(".")[0]
    scenes = list(bio.scenes)
    images = []
    for i, scene in enumerate(scenes):
        try:
            bio.set_scene(i)
            dims, shape = str(bio.dims.order), tuple(int(n) for n in bio.shape)
            dtype, native = np.dtype(bio.dtype), tuple(int(c[0]) for c in bio.dask_data.chunks)
            meta = bioio_metadata(bio, plugin, scene)
        except Exception as e:
            raise FormatError(
                f"{path}: reading the metadata of scene {i} with {plugin} failed "
                f"({type(e).__name__}: {e}); the file is damaged; copy or export it again"
            ) from e
        where = f"{path}@{i}" if len(scenes) > 1 else str(path)
        img_axes, keep = plan_axes(where, dims, shape, axes, right_align)
        oshape = tuple(shape[j] for j in keep)
        grid = tuple(max(1, native[j]) for j in keep)
        reader = BioioSceneReader(*ident, plugin, i, keep, len(shape), oshape, dtype, grid)
        spec = bioio_chunks(oshape, dtype, grid, chunks)
        data = reader_to_dask(reader, spec, (ident, plugin, i, keep), prefix="read-bioio")
        name = f"{path.name}@{i}" if len(scenes) > 1 else path.name
        source = f"{ident[0]}@{i}" if len(scenes) > 1 else ident[0]
        images.append(LazyImage(data, img_axes, name, source=source, metadata=meta))
    return images


def _list_folder(folder: Path, pattern: str | None) -> list[Path]:
    files = list_folder(
        folder, lambda p: matches(p.name, pattern) if pattern else vendor_suffix(p) is not None
    )
    if not files:
        raise SourceNotFoundError(
            f"{folder}: no file bioio reads here (extensions {', '.join(VENDOR_PLUGINS)}"
            + (f", pattern {pattern!r}" if pattern else "")
            + "); check the folder or pass pattern=..."
        )
    return files


def probe_bioio(source: Any, options: dict[str, Any]) -> bool:
    """Registry probe: a local file with a vendor extension no native loader owns."""
    if isinstance(source, list | tuple):
        return len(source) > 0 and all(probe_bioio(s, options) for s in source)
    if not isinstance(source, str | os.PathLike) or is_uri(source):
        return False
    suffix = vendor_suffix(source)
    return suffix is not None and suffix not in _NATIVE and not Path(source).is_dir()


def open_bioio(source: Any, axes: str | None = None, **options: Any) -> list[LazyImage]:
    """Open every scene of one or more files (or folders) through bioio, lazily.

    Parameters
    ----------
    source : str, path or list of them
        Files of any format a bioio plugin reads, or folders of them.
    axes : str, optional
        Letters of ``TCZYX`` naming the dimensions to keep, in the order wanted; singleton
        dimensions not named are dropped.  Default: the non-singleton dimensions in bioio's
        order (see :func:`plan_axes`).
    **options
        ``chunks`` (dask chunks; default whole multiples of the plugin's chunks of about
        32 MiB), ``pattern`` (folders: glob of the files; default every vendor extension),
        ``right_align_axes`` (csbdeep's rule, see :func:`plan_axes`).

    Returns
    -------
    list of LazyImage
        Per file in order (folders: natural order), one per scene, named ``file`` or
        ``file@<scene index>`` with ``metadata`` (pixel sizes, channel names); no pixel read.

    Raises
    ------
    MissingDependencyError
        bioio or the plugin for the file's extension is not installed (message: what to
        ``pip install``).
    FormatError
        A file its plugin cannot read (corrupt, truncated, another format).
    SourceNotFoundError
        A missing file, or a folder without readable files.
    AxesError
        Axes that do not fit the file.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InputError(
            f"{source}: unknown option(s) {unknown} for bioio sources; use {sorted(_OPTIONS)}"
        )
    items = list(source) if isinstance(source, list | tuple) else [source]
    images: list[LazyImage] = []
    for s in items:
        if not isinstance(s, str | os.PathLike) or is_uri(s):
            raise InputError(f"{s!r}: reader='bioio' reads local files and folders of them")
        p = Path(s).expanduser()
        files = _list_folder(p, options.get("pattern")) if p.is_dir() else [p]
        for f in files:
            images.extend(
                _open_file(f, axes, options.get("chunks"), bool(options.get("right_align_axes")))
            )
    return images


register_loader("bioio", probe_bioio, open_bioio)
