"""``caredask inspect``: what each image of a source looks like to caredask."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CaredaskError
from .common import HelpFormatter, add_axes_option, disk_size, examples, print_error

__all__ = ["DEFAULT_STATS_PERCENTILES", "add_parser", "describe", "run"]

DEFAULT_STATS_PERCENTILES = (0.1, 1.0, 50.0, 99.0, 99.9)

DESCRIPTION = """\
Show what caredask sees in each path: every image with its name, source, shape, axes, dtype,
dask chunks and size on disk; with --stats also its exact minimum, percentiles and maximum
(this reads all pixels). Reads metadata only otherwise. Every path is reported: a path that
fails gets its own error line and the others still print; the exit status is 2 if any failed.
"""


def add_parser(sub: Any) -> None:
    """Add ``caredask inspect``."""
    p = sub.add_parser(
        "inspect",
        help="what each image of a source looks like to caredask (shape, axes, chunks, stats)",
        description=DESCRIPTION,
        epilog=examples(
            "caredask inspect data/low",
            "caredask inspect data/low/img_000.tif image.ome.zarr scan.czi",
            "caredask inspect train.zarr/X train.zarr/Y --stats --stats-percentiles 1 99",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("path", nargs="+", help="files, folders, Zarr stores, CZI files or URIs")
    add_axes_option(p)
    p.add_argument(
        "--stats",
        action="store_true",
        help="also compute exact min, --stats-percentiles and max (reads every pixel)",
    )
    p.add_argument(
        "--stats-percentiles",
        type=float,
        nargs="+",
        default=DEFAULT_STATS_PERCENTILES,
        metavar="Q",
        help="percentiles shown with --stats",
    )
    p.set_defaults(handler=run)


def _on_disk(source: str) -> str:
    local = source.split("@", 1)[0] if "@" in source else source
    if "://" in local or not local or not Path(local).exists():
        return "n/a (not a local path)"
    from .common import _size

    note = " (the whole file)" if "@" in source else ""
    return _size(disk_size(local)) + note


def describe(paths: Sequence[str], axes: str | None) -> list[dict[str, Any]]:
    """One row per image: name, source, shape, axes, dtype, chunks (raises on a bad path)."""
    from ..loaders import open_images

    rows = []
    for p in paths:
        for img in open_images(p, axes):
            rows.append(
                {
                    "name": img.name,
                    "source": img.source,
                    "shape": img.data.shape,
                    "axes": img.axes,
                    "dtype": str(img.data.dtype),
                    "chunks": img.data.chunksize,
                    "n_chunks": img.data.npartitions,
                    "data": img.data,
                }
            )
    return rows


def _stats(data: Any, q: Sequence[float]) -> str:
    import dask

    from ..statistics.percentile import percentile

    lo, hi, pct = dask.compute(data.min(), data.max(), percentile(data, list(q)))
    shown = ", ".join(f"p{v:g} {float(x):.6g}" for v, x in zip(q, pct, strict=True))
    exact = data.dtype.kind in "iub"
    lo, hi = (int(v) if exact else f"{float(v):.6g}" for v in (lo, hi))
    return f"min {lo}, {shown}, max {hi}"


def _show(r: dict[str, Any], stats: Sequence[float] | None) -> None:
    print(
        f"{r['name']}\n  source: {r['source']}\n  shape:  {r['shape']}  axes: {r['axes']}"
        f"  dtype: {r['dtype']}\n  chunks: {r['chunks']} ({r['n_chunks']} chunks)"
        f"\n  on disk: {_on_disk(str(r['source']))}"
    )
    if stats is not None:
        print(f"  stats:  {_stats(r['data'], stats)}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Handler of ``caredask inspect``: every path, each failure on its own line."""
    failed = 0
    for path in args.path:
        try:
            for r in describe([path], args.axes):
                _show(r, args.stats_percentiles if args.stats else None)
        except CaredaskError as e:
            failed += 1
            print_error(str(e))
    return 2 if failed else 0
