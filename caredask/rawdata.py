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

from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from .axes import axes_check_and_normalize
from .errors import AxesError, InputError, SourceNotFoundError
from .loaders import LazyImage, open_images
from .loaders.registry import natural_key
from .transforms import Item, mark_rng_free

__all__ = ["RawData"]


def _right_aligned(axes: str, ndim: int, where: str) -> str:
    if len(axes) < ndim:
        raise AxesError(
            f"{where}: image has {ndim} dimensions but axes {axes!r} name only {len(axes)}; "
            f"pass axes with at least {ndim} letters"
        )
    return axes[len(axes) - ndim :]


def _open_tiff(path: Path, axes: str | None, right_align: bool) -> LazyImage:
    return open_images(path, axes=axes, right_align_axes=right_align)[0]


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
        *,
        right_align_axes: bool = True,
    ) -> RawData:
        """Pairs of TIFF files with the same name in source folders and a target folder.

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
        p = Path(basepath)
        if not p.is_dir():
            raise SourceNotFoundError(f"{p}: basepath is not a folder; check the path")
        if isinstance(source_dirs, str):
            source_dirs = [source_dirs]

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
        axes_n = None if axes is None else axes_check_and_normalize(axes)

        def _gen() -> Iterator[Item]:
            for fx, fy in pairs:
                x = _open_tiff(fx, axes_n, right_align_axes)
                y = _open_tiff(fy, axes_n, right_align_axes)
                if axes_n is None and x.axes != y.axes:
                    raise AxesError(
                        f"{fx}: axes {x.axes!r} (from its metadata) differ from its target's "
                        f"{y.axes!r} ({fy}); pass axes= explicitly"
                    )
                yield x.data, y.data, x.axes, None

        description = (
            f"{basepath}: target='{target_dir}', sources={list(source_dirs)}, "
            f"axes='{axes_n or 'from metadata'}', pattern='{pattern}'"
        )
        return RawData(_lazy(_gen, [str(f) for f, _ in pairs]), len(pairs), description)

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
    def from_sources(source: Any, target: Any, axes: str | None = None, **options: Any) -> RawData:
        """Pairs from any two sources :func:`caredask.open_images` reads (same count, order).

        Parameters
        ----------
        source, target : path, URI, array or list of them
            Source and target images, paired in the order the loader lists them.
        axes : str, optional
            Axes of every image; from the files' metadata when omitted.
        **options
            Passed to :func:`caredask.open_images`.
        """
        xs, ys = open_images(source, axes, **options), open_images(target, axes, **options)
        if len(xs) != len(ys):
            raise InputError(
                f"{len(xs)} source images ({source}) but {len(ys)} target images ({target}); "
                "give one target per source"
            )

        def _gen() -> Iterator[Item]:
            for x, y in zip(xs, ys, strict=True):
                if x.axes != y.axes:
                    raise AxesError(
                        f"{x.source}: axes {x.axes!r} differ from its target's {y.axes!r} "
                        f"({y.source}); pass axes= explicitly"
                    )
                yield x.data, y.data, x.axes, None

        desc = f"source={source}, target={target}, axes={axes}"
        return RawData(_lazy(_gen, [x.source or x.name for x in xs]), len(xs), desc)


def _lazy(gen: Callable[[], Iterator[Item]], names: list[str]) -> Callable[[], Iterator[Item]]:
    """Mark a caredask generator: draws no random numbers, yields lazy images with names."""
    gen = mark_rng_free(gen)  # type: ignore[arg-type,assignment]
    gen._caredask_names = names  # type: ignore[attr-defined]
    return gen
