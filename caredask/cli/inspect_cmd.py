"""``caredask inspect``: what each image of a source looks like to caredask."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zarr

from ..errors import CaredaskError
from ..writers.store_files import is_caredask_store
from .common import (
    HelpFormatter,
    add_axes_option,
    add_reader_option,
    disk_size,
    examples,
    print_error,
    reader_options,
)

__all__ = ["DEFAULT_STATS_PERCENTILES", "add_parser", "describe", "run"]

DEFAULT_STATS_PERCENTILES = (0.1, 1.0, 50.0, 99.0, 99.9)

DESCRIPTION = """\
Show what caredask sees in each path: every image with its name, source, shape, axes, dtype,
dask chunks and size on disk, and what the format says beyond pixels (reader, pixel sizes,
channel names); with --stats also its exact minimum, percentiles and maximum
(this reads all pixels). A caredask training data store (.zarr) is shown as one: its X and Y,
the images, patch size and seed it was made with. Reads metadata only otherwise. Every path
is reported: a path that fails gets its own error line and the others still print; the exit
status is 2 if any failed.
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
    add_reader_option(p)
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


def describe(paths: Sequence[str], axes: str | None, **options: Any) -> list[dict[str, Any]]:
    """One row per image: name, source, shape, axes, dtype, chunks, metadata (raises on a bad
    path); ``options`` go to :func:`caredask.open_images` (e.g. ``reader='bioio'``)."""
    from ..loaders import open_images

    rows = []
    for p in paths:
        for img in open_images(p, axes, **options):
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
                    "metadata": img.metadata,
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


def _metadata_lines(meta: dict[str, Any]) -> list[str]:
    """``inspect`` lines for a loader's metadata: reader, pixel sizes, channel names."""
    lines = []
    if meta.get("reader"):
        where = f"scene {meta.get('scene')}, dims {meta.get('dims')}"
        lines.append(f"reader: {meta['reader']} ({where})")
    pps = meta.get("physical_pixel_sizes")
    if pps:
        sizes = "  ".join(f"{k} {'?' if v is None else f'{v:g}'}" for k, v in pps.items())
        lines.append(f"pixel size (um): {sizes}")
    if meta.get("channel_names"):
        lines.append(f"channels: {', '.join(meta['channel_names'])}")
    return lines


def _show(r: dict[str, Any], stats: Sequence[float] | None) -> None:
    print(
        f"{r['name']}\n  source: {r['source']}\n  shape:  {r['shape']}  axes: {r['axes']}"
        f"  dtype: {r['dtype']}\n  chunks: {r['chunks']} ({r['n_chunks']} chunks)"
        f"\n  on disk: {_on_disk(str(r['source']))}"
    )
    for line in _metadata_lines(r["metadata"]):
        print(f"  {line}")
    if stats is not None:
        print(f"  stats:  {_stats(r['data'], stats)}", flush=True)


def _show_store(path: str, stats: Sequence[float] | None) -> None:
    """``inspect`` of a caredask training data store: its arrays and where they came from."""
    from ..writers.store import TrainingStore

    store = TrainingStore(path)
    rec = store.provenance
    axes = dict(zarr.open_group(path, mode="r").attrs).get("axes", "?")
    print(
        f"{path} (caredask training data, {len(store)} patches)\n"
        f"  X: {store.X.shape} {store.X.dtype}  Y: {store.Y.shape} {store.Y.dtype}  axes: {axes}"
        f"\n  from {len(rec.get('sources', []))} images (image axes {rec.get('axes')}), patch "
        f"size {tuple(rec.get('patch_size', ()))}, {rec.get('n_patches_per_image')} per image, "
        f"seed {rec.get('seed')!r}\n  on disk: {_on_disk(path)}"
    )
    if stats is not None:
        for name, data in (("X", store.X), ("Y", store.Y)):
            print(f"  stats {name}: {_stats(data, stats)}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Handler of ``caredask inspect``: every path, each failure on its own line."""
    failed = 0
    for path in args.path:
        try:
            if is_caredask_store(Path(path)):
                _show_store(path, args.stats_percentiles if args.stats else None)
                continue
            for r in describe([path], args.axes, **reader_options(args)):
                _show(r, args.stats_percentiles if args.stats else None)
        except (CaredaskError, OSError) as e:
            failed += 1
            print_error(str(e) or type(e).__name__)
    return 2 if failed else 0
