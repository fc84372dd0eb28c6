"""``RawData``: csbdeep's source of image pairs, over caredask's lazy loaders.

``RawData(generator, size, description)`` keeps csbdeep's protocol, so a user-written generator
of numpy arrays keeps working.  The constructors here yield lazy dask arrays instead of whole
images, and fix csbdeep's silent defects with clear errors.

Image order of :meth:`RawData.from_folder`: source folders in the order given; inside a folder,
``pathlib.Path.glob`` order (the file system's directory order, unsorted), exactly as csbdeep,
so both see the same pairs in the same order.  ``sort=True`` sorts naturally instead
(``img_2`` before ``img_10``), a documented deviation from csbdeep.
"""

from __future__ import annotations

import os
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from .axes import axes_check_and_normalize
from .errors import AxesError, InputError, SourceNotFoundError
from .loaders import LazyImage, open_images
from .loaders.discover import file_uri_to_path, is_uri, natural_key
from .loaders.labels import open_label
from .loaders.pairing import image_where, pair_by_name, pair_by_position
from .masks.pixel import eligible_pixels, fit_mask, pair_masks
from .transforms.protocol import Item, SourcedItem, mark_rng_free

__all__ = ["RawData", "open_masks"]


def _right_aligned(axes: str, ndim: int, where: str) -> str:
    if len(axes) < ndim:
        raise AxesError(
            f"{where}: image has {ndim} dimensions but axes {axes!r} name only {len(axes)}; "
            f"pass axes with at least {ndim} letters"
        )
    return axes[len(axes) - ndim :]


def _open_tiff(
    path: Path, axes: str | None, right_align: bool = True, reader: str | None = None
) -> LazyImage:
    options = {} if reader is None else {"reader": reader}
    return open_images(path, axes=axes, right_align_axes=right_align, **options)[0]


def _folder_pairs(
    p: Path, source_dirs: Sequence[str], target_dir: str, pattern: str, sort: bool
) -> list[tuple[Path, Path]]:
    """``(source, target)`` files of :meth:`RawData.from_folder`, checked to exist."""
    if not p.is_dir():
        raise SourceNotFoundError(f"{p}: basepath is not a folder; check the path")

    def listing(sd: str) -> list[Path]:
        files = list((p / sd).glob(pattern))
        return sorted(files, key=lambda f: natural_key(f.name)) if sort else files

    pairs = [(f, p / target_dir / f.name) for f in chain(*(listing(sd) for sd in source_dirs))]
    if not pairs:
        raise SourceNotFoundError(
            f"Didn't find any images: no files matching {pattern!r} in "
            f"{[str(p / sd) for sd in source_dirs]}; check basepath, source_dirs and pattern"
        )
    for fx, fy in pairs:
        if fx.is_dir():
            raise InputError(
                f"{fx}: pattern {pattern!r} matches a directory; use a pattern that matches "
                "only image files (e.g. '*.tif')"
            )
        if not fy.exists():
            raise SourceNotFoundError(
                f"{fy}: target image missing for source {fx}; add it or remove the source"
            )
    return pairs


def _folder_items(
    pairs: list[tuple[Path, Path]],
    axes: str | None,
    right_align: bool,
    reader: str | None,
    metadata: dict[str, Any],
) -> Callable[[], Iterator[Item]]:
    """The generator function of :meth:`RawData.from_folder`: opens each pair lazily."""

    def _gen() -> Iterator[Item]:
        for fx, fy in pairs:
            x = _open_tiff(fx, axes, right_align, reader)
            y = _open_tiff(fy, axes, right_align, reader)
            if axes is None and x.axes != y.axes:
                raise AxesError(
                    f"{fx}: axes {x.axes!r} (from its metadata) differ from its target's "
                    f"{y.axes!r} ({fy}); pass axes= explicitly"
                )
            _add_metadata(metadata, x, y)
            yield SourcedItem((x.data, y.data, x.axes, None), (str(fx), str(fy)))

    return _gen


class RawData(namedtuple("RawData", ("generator", "size", "description"))):
    """Pairs of source (``x``) and target (``y``) images, yielded by ``generator()``.

    ``generator()`` returns a fresh iterator of ``(x, y, axes, mask)``; ``size`` is the number
    of pairs; ``description`` says where they come from.
    """

    __slots__ = ()

    @staticmethod
    def from_folder(
        basepath: str | Path,
        source_dirs: Sequence[str],
        target_dir: str,
        axes: str | None = "CZYX",
        pattern: str = "*.tif*",
        sort: bool = False,
        reader: str | None = None,
        *,
        right_align_axes: bool = True,
    ) -> RawData:
        """Pairs of image files with the same name in source folders and a target folder.

        Parameters
        ----------
        basepath : str or Path
            Folder holding ``source_dirs`` and ``target_dir``.
        source_dirs : sequence of str
            Folders of source images, chained in this order.
        target_dir : str
            Folder of target images (same file names).
        axes : str or None
            Axes of the images, right-aligned to each image's dimensions (``'CZYX'`` for a 3D
            image means ``'ZYX'``, as in csbdeep); ``None`` takes each file's axes from its
            ImageJ/OME metadata (an error when a file has none).
        pattern : str
            Glob pattern of the files (case-sensitive, as csbdeep).
        sort : bool
            Natural sort inside each folder instead of csbdeep's directory order.
        reader : {None, 'bioio'}
            ``'bioio'`` reads every file through bioio's plugins (see
            :func:`caredask.open_images`); by default vendor formats (e.g. ``pattern='*.dv'``)
            go to bioio and TIFFs to tifffile.
        right_align_axes : bool
            csbdeep's rule (default); ``False`` requires ``axes`` to name every dimension of
            every image, as the command line does (a longer ``axes`` is then an error, never
            silently shortened).

        Raises
        ------
        SourceNotFoundError
            No matching files, or a source without its target (named).
        InputError
            The pattern matches a directory.
        """
        if isinstance(source_dirs, str):
            source_dirs = [source_dirs]
        pairs = _folder_pairs(Path(basepath), source_dirs, target_dir, pattern, sort)
        axes_n = None if axes is None else axes_check_and_normalize(axes)
        metadata: dict[str, Any] = {}
        gen = _folder_items(pairs, axes_n, right_align_axes, reader, metadata)
        description = (
            f"{basepath}: target='{target_dir}', sources={list(source_dirs)}, "
            f"axes='{axes_n or 'from metadata'}', pattern='{pattern}'"
        )
        names, targets = [str(f) for f, _ in pairs], [str(t) for _, t in pairs]
        return RawData(_lazy(gen, names, targets, metadata), len(pairs), description)

    @staticmethod
    def from_arrays(X: Sequence[Any], Y: Sequence[Any], axes: str = "CZYX") -> RawData:
        """Pairs from two sequences (or stacked arrays) of numpy or dask arrays.

        Unlike csbdeep, different lengths of ``X`` and ``Y`` and empty inputs are errors.
        """
        if len(X) != len(Y):
            raise InputError(
                f"from_arrays: {len(X)} source images but {len(Y)} target images; "
                "give one target per source"
            )
        if len(X) == 0:
            raise InputError("from_arrays: no images given; pass at least one (x, y) pair")

        def _gen() -> Iterator[Item]:
            for i, (x, y) in enumerate(zip(X, Y, strict=True)):
                yield x, y, _right_aligned(axes, x.ndim, f"from_arrays image {i}"), None

        return RawData(_lazy(_gen, [f"array[{i}]" for i in range(len(X))]), len(X), "numpy array")

    @staticmethod
    def from_sources(
        source: Any,
        target: Any,
        axes: str | None = None,
        *,
        pair_by: str = "auto",
        mask: Any = None,
        mask_label: str | None = None,
        mask_values: Sequence[int] | None = None,
        mask_axes: str | None = None,
        **options: Any,
    ) -> RawData:
        """Pairs from any two sources :func:`caredask.open_images` reads.

        Parameters
        ----------
        source, target : path, URI, array or list of them
            Source and target images.
        axes : str, optional
            Axes of every image; from the files' metadata when omitted.
        pair_by : {'auto', 'name', 'position'}
            ``'name'``: a source and a target pair when their image names are equal (file
            name, ``store.zarr/array``, ``file.czi@scene``), like csbdeep's folders and
            ``caredask dataset``; names without a partner are refused, naming them.
            ``'position'``: the i-th source with the i-th target (arrays, or files whose names
            legitimately differ).  ``'auto'`` (default): by name when both sides are folders
            or lists of paths, by position otherwise (arrays, one file or store each).
        mask : path, URI, array or list of them, optional
            csbdeep's pixel mask from a third source in any format (TIFF folder, Zarr arrays,
            an OME-Zarr label image): patch centres only where the whole patch lies on
            non-zero mask pixels, combined with the patch filter exactly as csbdeep combines
            a mask.  Paired with the sources by name when every source has a mask of its name,
            else in order.  A missing or size-1 channel axis is broadcast.
        mask_label : str, optional
            Instead of ``mask``: the NGFF label image ``labels/<mask_label>`` of each OME-Zarr
            input (the source's, else the target's), at the level matching the image.
        mask_values : sequence of int, optional
            Only these labels are eligible (default: any non-zero label).
        mask_axes : str, optional
            Axes of the masks; default: their metadata, else ``axes``.
        **options
            Passed to :func:`caredask.open_images` (also for the masks).

        Raises
        ------
        InputError
            Unknown ``pair_by``; images without a partner (named); repeated names when
            pairing by name; different counts when pairing by position (the extra named);
            ``mask`` and ``mask_label`` both given, a mask that cannot be paired or whose shape
            does not match its image (both named), or no label image found.
        """
        if pair_by not in ("auto", "name", "position"):
            raise InputError(f"pair_by={pair_by!r}: use 'auto', 'name' or 'position'")
        xs, ys = open_images(source, axes, **options), open_images(target, axes, **options)
        by_name = pair_by == "name" or (
            pair_by == "auto" and _is_collection(source) and _is_collection(target)
        )
        pairs = pair_by_name(xs, ys) if by_name else pair_by_position(xs, ys)
        masks = open_masks(
            [x for x, _ in pairs],
            [y for _, y in pairs],
            axes,
            mask=mask,
            mask_label=mask_label,
            mask_values=mask_values,
            mask_axes=mask_axes,
            **options,
        )

        def _gen() -> Iterator[Item]:
            for i, (x, y) in enumerate(pairs):
                if x.axes != y.axes:
                    raise AxesError(
                        f"{x.source}: axes {x.axes!r} differ from its target's {y.axes!r} "
                        f"({y.source}); pass axes= explicitly"
                    )
                m = None if masks is None else masks[i]
                yield SourcedItem((x.data, y.data, x.axes, m), (image_where(x), image_where(y)))

        desc = f"source={source}, target={target}, axes={axes}, pair_by={pair_by}"
        if mask is not None or mask_label is not None:
            desc += f", mask={mask if mask_label is None else 'labels/' + mask_label}"
        metadata: dict[str, Any] = {}
        for x, y in pairs:
            _add_metadata(metadata, x, y)
        names = [image_where(x) for x, _ in pairs]
        targets = [image_where(y) for _, y in pairs]
        return RawData(_lazy(_gen, names, targets, metadata), len(pairs), desc)


def _is_collection(src: Any) -> bool:
    """A folder (not a Zarr store) or a non-empty list of paths: sides that pair by name."""
    from .loaders.zarrs import is_zarr_source

    if isinstance(src, list | tuple):
        return len(src) > 0 and all(isinstance(s, str | os.PathLike) for s in src)
    if not isinstance(src, str | os.PathLike):
        return False
    text = os.fspath(src)
    if text.lower().startswith("file://"):
        text = file_uri_to_path(text)
    elif is_uri(text):
        return False
    return Path(text).is_dir() and not is_zarr_source(text)


def _add_metadata(metadata: dict[str, Any], *images: LazyImage) -> None:
    for img in images:
        if img.metadata:
            metadata[img.source or img.name] = img.metadata


def open_masks(
    xs: Sequence[LazyImage],
    ys: Sequence[LazyImage],
    axes: str | None = None,
    *,
    mask: Any = None,
    mask_label: str | None = None,
    mask_values: Sequence[int] | None = None,
    mask_axes: str | None = None,
    **options: Any,
) -> list[Any] | None:
    """Lazy boolean pixel masks for image pairs, shaped like the images (``None``: no masks).

    Arguments as for :meth:`RawData.from_sources`; ``xs``/``ys`` are the opened sources and
    targets.  Nothing is read but metadata.
    """
    if mask is None and mask_label is None:
        if mask_values is not None:
            raise InputError("mask_values needs mask= or mask_label=")
        return None
    if mask is not None and mask_label is not None:
        raise InputError("pass either mask= (a mask source) or mask_label= (NGFF labels), not both")
    if mask is not None:
        lazy = pair_masks(xs, _open_mask_images(mask, axes, mask_axes, options))
    else:
        lazy = [_ngff_label(x, y, str(mask_label), options) for x, y in zip(xs, ys, strict=True)]
    return [eligible_pixels(fit_mask(m, x), mask_values) for m, x in zip(lazy, xs, strict=True)]


def _open_mask_images(
    mask: Any, axes: str | None, mask_axes: str | None, options: dict[str, Any]
) -> list[LazyImage]:
    """Masks with ``mask_axes``, else their own metadata's axes, else the images' ``axes``."""
    if mask_axes is not None or axes is None:
        return open_images(mask, mask_axes, **options)
    try:
        return open_images(mask, None, **options)
    except AxesError:
        return open_images(mask, axes, **options)


def _ngff_label(x: LazyImage, y: LazyImage, name: str, options: dict[str, Any]) -> LazyImage:
    for img in (x, y):
        lab = open_label(img, name, options.get("storage_options"))
        if lab is not None:
            return lab
    raise InputError(
        f"no NGFF label image {name!r} (labels/{name}) in {x.source} nor in {y.source}; "
        "write it with ome-zarr-py (write_labels) or pass mask= with a mask source"
    )


def _lazy(
    gen: Callable[[], Iterator[Item]],
    names: list[str],
    targets: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Callable[[], Iterator[Item]]:
    """Mark a caredask generator: draws no random numbers, yields lazy images with names.

    ``metadata`` (source -> the loader's :attr:`LazyImage.metadata`, filled as images are
    opened) is what :func:`caredask.writers.provenance.record_source_metadata` stores.
    """
    gen = mark_rng_free(gen)  # type: ignore[arg-type,assignment]
    gen._caredask_names = names  # type: ignore[attr-defined]
    gen._caredask_targets = targets or []  # type: ignore[attr-defined]
    gen._caredask_metadata = {} if metadata is None else metadata  # type: ignore[attr-defined]
    return gen
