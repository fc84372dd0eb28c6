"""``caredask convert SRC... OUT.zarr``: sharded OME-Zarr 0.5 from any input caredask reads.

Also the ``--no-zarrs`` switch every command accepts (before or after the command name).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["add_no_zarrs_option", "add_parser", "handler", "zarrs_switch"]

_SPACE = "ZYX"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert`` on the ``caredask`` sub-command parsers."""
    p = subparsers.add_parser(
        "convert",
        help="rewrite TIFF/CZI/Zarr inputs as sharded Zarr v3 with OME-Zarr 0.5 metadata",
        description="Rewrite the images of SRC as sharded OME-Zarr 0.5 (one image: an OME "
        "image at OUT; several: a bioformats2raw layout OUT/0, OUT/1, ...). Written to "
        "OUT.partial and renamed when complete.",
    )
    p.add_argument("source", nargs="+", help="files, folders, stores or URIs (any format)")
    p.add_argument("output", help="output directory, e.g. data.zarr")
    p.add_argument("--axes", default=None, help="axes when the files have no metadata")
    p.add_argument("--pattern", default=None, help="glob pattern of files in a folder")
    p.add_argument(
        "--patch-size",
        type=int,
        nargs="+",
        metavar="N",
        help="patch size of the training jobs, for the spatial axes (e.g. 16 64 64 for ZYX); "
        "inner chunks take this size (default 16 64 64)",
    )
    p.add_argument(
        "--inner-chunks", type=int, nargs="+", metavar="N", help="explicit inner chunk shape"
    )
    p.add_argument("--shard-shape", type=int, nargs="+", metavar="N", help="explicit shards")
    p.add_argument(
        "--shard-mib", type=float, default=128, help="target shard size in MiB (default 128)"
    )
    p.add_argument(
        "--scale",
        type=float,
        nargs="+",
        metavar="F",
        help="pixel size along the spatial axes (e.g. 0.5 0.1 0.1 for ZYX), in --unit",
    )
    p.add_argument("--unit", default=None, help="unit of the spatial axes, e.g. micrometer")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--scheduler", default=None, help="threads, processes or a cluster ADDRESS")
    return p


def add_no_zarrs_option(parser: argparse.ArgumentParser, subparsers: Any) -> None:
    """``--no-zarrs`` on the main parser and on every sub-command."""
    text = "read Zarr with zarr-python's codec pipeline even if zarrs is installed"
    parser.add_argument("--no-zarrs", action="store_true", help=text)
    for p in subparsers.choices.values():
        p.add_argument("--no-zarrs", action="store_true", default=argparse.SUPPRESS, help=text)


@contextlib.contextmanager
def zarrs_switch(args: argparse.Namespace) -> Iterator[None]:
    """Turn ``zarrs`` off while a command runs when ``--no-zarrs`` was given."""
    from ..loaders.codecs import use_zarrs

    if getattr(args, "no_zarrs", False):
        with use_zarrs(False):
            yield
    else:
        yield


def _spatial(flag: str, values: list[Any] | None) -> dict[str, Any] | None:
    """Values for the last spatial axes (``16 64 64`` -> Z, Y, X; ``64 64`` -> Y, X)."""
    from ..errors import InputError

    if not values:
        return None
    if len(values) > len(_SPACE):
        raise InputError(f"{flag} {values}: give at most 3 values (Z Y X)")
    return dict(zip(_SPACE[-len(values) :], values, strict=True))


def handler(args: argparse.Namespace) -> int:
    """Run ``caredask convert``."""
    from ..writers.convert import convert_to_zarr
    from .main import scheduler

    patch, scale = _spatial("--patch-size", args.patch_size), _spatial("--scale", args.scale)
    options = {} if args.pattern is None else {"pattern": args.pattern}
    source = args.source[0] if len(args.source) == 1 else args.source
    with scheduler(args.scheduler):
        out = convert_to_zarr(
            source,
            args.output,
            axes=args.axes,
            patch_size=patch,
            scale=scale,
            inner_chunks=args.inner_chunks,
            shard_shape=args.shard_shape,
            shard_bytes=int(args.shard_mib * 2**20),
            unit=args.unit,
            overwrite=args.overwrite,
            **options,
        )
    print(f"wrote {out}")
    return 0
