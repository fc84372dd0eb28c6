"""``caredask patches``: training patches, exactly csbdeep's ``create_patches``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InputError
from .cluster import add_cluster_options, connect
from .common import (
    HelpFormatter,
    add_axes_option,
    add_normalization_options,
    add_quiet_option,
    add_reader_option,
    examples,
    one,
    print_summary,
    reader_options,
)
from .dataset_cmd import rebuild_command
from .mask_opts import add_mask_options, mask_kwargs
from .preview_cmd import check_preview_option, patches_preview

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Cut training patches from pairs of source (low SNR) and target (high SNR) images, exactly as
csbdeep 0.8.2's create_patches does (same X, Y and axes for the same --seed), and write them
to a .npz file (csbdeep's format) or a .zarr store (streamed, with provenance).

Inputs, one of:
  BASEPATH                 csbdeep's layout: BASEPATH/low/*.tif and BASEPATH/GT/*.tif with the
                           same file names, in csbdeep's (unsorted) file order unless --sort
  --source ... --target ...  any format caredask reads (TIFF, Zarr, OME-Zarr, CZI, URIs,
                           vendor formats through bioio), paired by name (see --pair-by)
  --manifest FILE          rebuild the training data of a 'caredask dataset' bit for bit
"""

EXAMPLES = examples(
    "caredask patches data --axes ZYX --patch-size 16 64 64 -k 128 --seed 0 -o train.npz",
    "caredask patches --source data/low --target data/GT --patch-size 16 64 64 -k 128 \\\n"
    "      -o train.zarr --scheduler-file scheduler.json",
    "caredask patches --manifest dataset/manifest.json -o rebuilt.npz",
    "caredask patches --source data/low --target data/GT --mask data/masks --patch-size 16 64 64 "
    "-k 128 \\\n      -o train.zarr --preview sampled.png",
)


def _add_patch_options(p: Any) -> None:
    g = p.add_argument_group("patches (csbdeep's create_patches options)")
    g.add_argument(
        "--patch-size",
        type=int,
        nargs="+",
        metavar="N",
        help="patch size, one entry per image axis (in the order of the axes), e.g. 16 64 64",
    )
    g.add_argument(
        "--n-patches-per-image", "-k", type=int, metavar="K", help="patches cut from each image"
    )
    g.add_argument(
        "--patch-axes",
        default=None,
        metavar="AXES",
        help="axes of the patches, e.g. YXC (default: the images')",
    )
    g.add_argument("--no-shuffle", action="store_true", help="keep patches in sample order")
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed: same output as np.random.seed(SEED) before csbdeep's create_patches",
    )
    f = p.add_argument_group("filter and normalisation")
    f.add_argument(
        "--no-filter", action="store_true", help="sample everywhere (csbdeep: patch_filter=None)"
    )
    f.add_argument(
        "--filter-threshold",
        type=float,
        default=0.4,
        metavar="THRESHOLD",
        help="patch centres need a target value above THRESHOLD x the target's "
        "FILTER_PERCENTILE-th percentile nearby (csbdeep's no_background_patches)",
    )
    f.add_argument(
        "--filter-percentile",
        type=float,
        default=99.9,
        metavar="PERCENTILE",
        help="percentile of the target the filter threshold is relative to",
    )
    f.add_argument(
        "--no-normalization",
        action="store_true",
        help="keep raw values (csbdeep: normalization=None)",
    )
    f.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        default=None,
        metavar=("PMIN", "PMAX"),
        help="normalise every patch with these fixed percentiles instead of drawing them from "
        "--pmin/--pmax",
    )
    add_normalization_options(f)


def add_parser(sub: Any) -> None:
    """Add ``caredask patches``."""
    p = sub.add_parser(
        "patches",
        help="training patches from source/target images (csbdeep's create_patches, exactly)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    _add_inputs(p)
    _add_output(p)
    _add_patch_options(p)
    _add_data_problems(p)
    add_mask_options(p)
    add_cluster_options(p).add_argument(
        "--memory",
        default=None,
        metavar="SIZE",
        help="memory budget of the work in flight, e.g. 4GiB or 500MB (default: 2 GiB or a "
        "quarter of this machine's memory; on a cluster half the workers' memory limit)",
    )
    p.set_defaults(handler=run)


def _add_inputs(p: Any) -> None:
    """The "inputs" options: BASEPATH, --source/--target or --manifest."""
    i = p.add_argument_group("inputs")
    i.add_argument("basepath", nargs="?", help="folder holding the source and target folders")
    i.add_argument(
        "--source",
        nargs="+",
        metavar="PATH",
        help="instead of BASEPATH: source files, folders, Zarr/OME-Zarr stores, URIs or CZI "
        "files, paired with --target (see --pair-by)",
    )
    i.add_argument(
        "--target", nargs="+", metavar="PATH", help="target images (paired with --source)"
    )
    i.add_argument(
        "--pair-by",
        choices=("auto", "name", "position"),
        default="auto",
        help="pair --source and --target images by name or by position; auto: by name when "
        "both are folders or lists of files, else by position",
    )
    i.add_argument(
        "--manifest",
        default=None,
        metavar="FILE",
        help="rebuild the training data of a dataset manifest (patch options come from it; "
        "--output overrides where they go)",
    )
    i.add_argument(
        "--source-dirs", nargs="+", default=["low"], metavar="DIR", help="source folders"
    )
    i.add_argument("--target-dir", default="GT", metavar="DIR", help="target folder")
    add_axes_option(i)
    i.add_argument("--pattern", default="*.tif*", help="glob pattern of the image files")
    add_reader_option(i)
    i.add_argument(
        "--sort",
        action="store_true",
        help="natural file order (img_2 before img_10) instead of csbdeep's directory order",
    )


def _add_output(p: Any) -> None:
    """The "output" options."""
    o = p.add_argument_group("output")
    o.add_argument("--output", "-o", metavar="FILE", help="output file: NAME.npz or NAME.zarr")
    o.add_argument("--overwrite", action="store_true", help="replace an existing output")
    o.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted .zarr run of this output instead of resuming it",
    )
    o.add_argument(
        "--preview", default=None, metavar="FILE.png", help="PNG of what was sampled (.zarr only)"
    )
    add_quiet_option(o)


def _add_data_problems(p: Any) -> None:
    """What to do with images the filter empties or that hold NaN."""
    d = p.add_argument_group("data problems")
    d.add_argument(
        "--skip-empty",
        action="store_true",
        help="skip images the filter leaves nothing to sample from (named in the output) "
        "instead of stopping",
    )
    d.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="keep images with NaN or infinite values (csbdeep's behaviour: NaN patches) "
        "instead of refusing them",
    )


def _normalization(args: argparse.Namespace) -> Any:
    """csbdeep's percentile normalisation from the options (one rule with recorded recipes)."""
    from ..dataset.recipe import make_normalization

    if args.no_normalization:
        return None
    spec = {
        "mode": "percentile",
        "pmin": args.pmin,
        "pmax": args.pmax,
        "percentiles": args.percentiles,
        "relu_last": args.relu_last,
    }
    return make_normalization(spec, stats=_no_dataset_statistics)


def _no_dataset_statistics() -> Any:
    raise AssertionError("percentile normalisation takes no dataset statistics")


def _check(args: argparse.Namespace) -> Path:
    missing = [
        f
        for f, v in (
            ("--patch-size", args.patch_size),
            ("-k", args.n_patches_per_image),
            ("--output", args.output),
        )
        if v is None
    ]
    if missing or (args.basepath is None) == (args.source is None):
        raise InputError(
            "patches needs BASEPATH (csbdeep's folder layout) or --source/--target, and "
            f"{', '.join(missing) or 'its options'}; or --manifest to rebuild a dataset "
            "(see caredask patches --help)"
        )
    if args.source is not None and args.target is None:
        raise InputError("--source needs --target (one target per source, same order)")
    if args.memory is not None:
        from ..sampling.schedule import resolve_budget

        resolve_budget(args.memory)  # checked before any work starts
    from ..writers.paths import check_output_path

    return check_output_path(args.output, args.overwrite, cli=True)


def _raw_data(args: argparse.Namespace) -> Any:
    from ..rawdata import RawData

    masks = mask_kwargs(args)
    if args.source is not None:
        return RawData.from_sources(
            one(args.source),
            one(args.target),
            args.axes,
            pair_by=args.pair_by,
            **masks,
            **reader_options(args),
        )
    if masks:
        raise InputError(
            "--mask/--mask-label need --source/--target (not BASEPATH): e.g. --source "
            "BASEPATH/low --target BASEPATH/GT --mask BASEPATH/masks"
        )
    return RawData.from_folder(
        args.basepath,
        args.source_dirs,
        args.target_dir,
        args.axes,
        args.pattern,
        sort=args.sort,
        reader=args.reader,
        right_align_axes=False,
    )


def _provenance(out: Path, raw: Any) -> str:
    if out.suffix == ".zarr":
        from ..writers.provenance import record_source_metadata

        meta = ", the sources' metadata" if record_source_metadata(out, raw) else ""
        return (
            f"{out / 'zarr.json'} (store attributes: sources, axes, seed, per-image thresholds "
            f"and percentiles{meta}, caredask version)"
        )
    return (
        "none in .npz (csbdeep's format holds X, Y, axes only); write NAME.zarr or use "
        "'caredask dataset' for a record"
    )


def run(args: argparse.Namespace) -> int:
    """Handler of ``caredask patches``."""
    from ..masks.filters import no_background_patches
    from ..sampling.create import generate_training_data

    if args.manifest:
        return rebuild_command(args)
    out = _check(args)
    check_preview_option(args, out)
    with connect(args.scheduler, args.scheduler_file, args.workers, args.timeout):
        raw = _raw_data(args)
        filt = (
            None
            if args.no_filter
            else no_background_patches(args.filter_threshold, args.filter_percentile)
        )
        t0 = time.perf_counter()
        done: dict[str, Any] = {}
        X, Y, axes = generate_training_data(
            raw,
            args.patch_size,
            args.n_patches_per_image,
            seed=args.seed,
            patch_axes=args.patch_axes,
            save_file=out.resolve(),  # workers of a cluster have their own working directory
            patch_filter=filt,
            normalization=_normalization(args),
            shuffle=not args.no_shuffle,
            overwrite=args.overwrite,
            verbose=not args.quiet,
            memory_budget=args.memory,
            resume=not args.restart,
            on_empty="skip" if args.skip_empty else "raise",
            nonfinite="keep" if args.allow_nonfinite else "raise",
            summary=done,
        )
        seconds = time.perf_counter() - t0
        for name in done["skipped"]:
            print(f"skipped (no foreground): {name}", file=sys.stderr)
        n_images = int(done["images"])
        print_summary(out, X, Y, axes, n_images, seconds, _provenance(out, raw))
        if done.get("resumed"):
            print(f"  resumed: {done['resumed']} images were taken over from an interrupted run")
        png = patches_preview(args, out, list(getattr(raw.generator, "_caredask_names", [])))
        if png is not None:
            print(f"wrote {png}")
    return 0
