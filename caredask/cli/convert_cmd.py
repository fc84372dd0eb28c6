"""``caredask convert SRC... OUT.zarr``: sharded OME-Zarr 0.5 from any input caredask reads."""

from __future__ import annotations

import argparse
from typing import Any

from .cluster import add_cluster_options, connect
from .common import HelpFormatter, add_axes_option, examples, one

__all__ = ["add_parser", "handler"]

_SPACE = "ZYX"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert`` on the ``caredask`` sub-command parsers."""
    p = subparsers.add_parser(
        "convert",
        help="rewrite TIFF/CZI/Zarr inputs as sharded Zarr v3 with OME-Zarr 0.5 metadata",
        description="Rewrite the images of SRC as sharded OME-Zarr 0.5 (one image: an OME "
        "image at OUT; several: a bioformats2raw layout OUT/0, OUT/1, ...). Written to "
        "OUT.partial and renamed when complete.",
        epilog=examples(
            "caredask convert data/low low.zarr --axes ZYX --patch-size 16 64 64",
            "caredask convert scan.czi scan.zarr --scale 0.5 0.1 0.1 --unit micrometer",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("source", nargs="+", help="files, folders, stores or URIs (any format)")
    p.add_argument("output", help="output directory, e.g. data.zarr")
    add_axes_option(p)
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
    p.add_argument("--shard-mib", type=float, default=128, help="target shard size in MiB")
    p.add_argument(
        "--scale",
        type=float,
        nargs="+",
        metavar="F",
        help="pixel size along the spatial axes (e.g. 0.5 0.1 0.1 for ZYX), in --unit",
    )
    p.add_argument("--unit", default=None, help="unit of the spatial axes, e.g. micrometer")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_cluster_options(p)
    p.set_defaults(handler=handler)
    return p


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

    patch, scale = _spatial("--patch-size", args.patch_size), _spatial("--scale", args.scale)
    options = {} if args.pattern is None else {"pattern": args.pattern}
    with connect(args.scheduler, args.scheduler_file, args.workers, args.timeout):
        out = convert_to_zarr(
            one(args.source),
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
