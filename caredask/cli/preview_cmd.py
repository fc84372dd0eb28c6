"""``caredask preview`` and the ``--preview FILE.png`` hook of ``caredask patches``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .cluster import add_cluster_options, connect
from .common import HelpFormatter, add_axes_option, examples, one
from .mask_opts import add_mask_options, mask_kwargs

__all__ = ["add_parser", "check_preview_option", "patches_preview", "run"]


def add_parser(sub: Any) -> None:
    """Add the ``preview`` subcommand."""
    p = sub.add_parser(
        "preview",
        help="PNG of what was sampled (a .zarr store) or of the region filter thresholds allow",
        description="Draw a PNG: for a caredask .zarr training data store, the sampled patches "
        "on their images; for target images, the region each --filter-threshold leaves for "
        "patch centres (no patches are computed).",
        epilog=examples(
            "caredask preview train.zarr -o sampled.png",
            "caredask preview data/GT --filter-threshold 0.2 0.4 0.6 --patch-size 16 64 64 "
            "-o thresholds.png",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="STORE_OR_IMAGES",
        help="a caredask .zarr training data store, or target images (any format)",
    )
    p.add_argument("--output", "-o", required=True, help="PNG file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    p.add_argument(
        "--target", nargs="+", default=None, help="store: the target images (tints the region)"
    )
    add_axes_option(p)
    p.add_argument(
        "--filter-threshold",
        type=float,
        nargs="+",
        default=None,
        metavar="T",
        help="images: thresholds to compare, e.g. 0.2 0.4 0.6 (no patches are computed)",
    )
    p.add_argument(
        "--filter-percentile",
        type=float,
        default=99.9,
        metavar="PERCENTILE",
        help="percentile of the target the filter threshold is relative to",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="images: patch size of the filter, one entry per axis",
    )
    p.add_argument("--max-images", type=int, default=4, help="images shown")
    p.add_argument("--n-patches", type=int, default=8, help="store: patch pairs per image")
    add_mask_options(p)
    add_cluster_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``caredask preview``."""
    from ..visual.sampled import preview

    with connect(args.scheduler, args.scheduler_file, args.workers, args.timeout):
        path = preview(
            one(args.inputs),
            args.output,
            filter_threshold=args.filter_threshold,
            patch_size=args.patch_size,
            filter_percentile=args.filter_percentile,
            target=None if args.target is None else one(args.target),
            axes=args.axes,
            max_images=args.max_images,
            n_pairs=args.n_patches,
            overwrite=args.overwrite,
            **mask_kwargs(args),
        )
    print(f"wrote {path}")
    return 0


def check_preview_option(args: argparse.Namespace, out: Path) -> None:
    """Refuse ``patches --preview`` before any work if it cannot be written."""
    if args.preview is None:
        return
    if out.suffix != ".zarr":
        raise UsageError(
            "--preview needs a .zarr --output (it records the patch coordinates); or run "
            "`caredask preview` on a .zarr store"
        )
    if Path(args.preview).exists() and not args.overwrite:
        raise UsageError(f"{args.preview} exists; pass --overwrite or choose another name")


def patches_preview(args: argparse.Namespace, out: Path, sources: list[str]) -> Path | None:
    """After ``caredask patches``: draw the sampled patches of ``out`` into ``--preview``."""
    if args.preview is None:
        return None
    from ..visual.sampled import preview_store

    if args.source is not None:
        target: Any = one(args.target)
    else:
        target = [str(Path(args.basepath) / args.target_dir / Path(s).name) for s in sources]
    masks = mask_kwargs(args)
    path, _ = preview_store(
        out,
        args.preview,
        target=target,
        axes=args.axes,
        overwrite=args.overwrite,
        mask_options=masks or None,
    )
    return path
