"""``caredask index``, ``caredask dataset`` and ``caredask patches --manifest``.

:func:`add_parsers` adds ``index`` and ``dataset`` (each with its handler as ``handler``);
:func:`rebuild_command` is what ``caredask patches --manifest`` runs.
"""

from __future__ import annotations

import argparse
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
    print_summary,
    reader_options,
)
from .mask_opts import add_mask_options, mask_kwargs

__all__ = ["add_parsers", "rebuild_command"]

_STATS_DEFAULT = "0.1 1 2 3 50 97 99 99.5 99.8 99.9"


def _add_index(sub: Any) -> None:
    p = sub.add_parser(
        "index",
        help="index input images: content ids, shape, axes, dtype, screening",
        description="Record every input image (content id = SHA-256, shape, axes, dtype, "
        "frames) in a JSON index, updated incrementally: unchanged files are not hashed "
        "again. Images failing the screening options are recorded with the reason.",
        epilog=examples(
            "caredask index raw --axes TYX --min-frames 8 --output raw_index.json",
            "caredask index data/low data/GT --patch-size 16 64 64",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("sources", nargs="+", help="files, folders or stores")
    add_axes_option(p)
    p.add_argument("--output", "-o", default="index.json", help="index file (updated in place)")
    p.add_argument(
        "--pattern", default=None, help="files taken from folders (default: all image files)"
    )
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    s = p.add_argument_group("screening (rejected images are recorded with a reason)")
    s.add_argument("--ndim", type=int, default=None, help="required number of dimensions")
    s.add_argument(
        "--patch-size",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="minimum size, one entry per axis",
    )
    s.add_argument("--min-frames", type=int, default=None, help="minimum length of the T axis")
    p.add_argument("--quiet", "-q", action="store_true", help="summary only")
    add_reader_option(p)
    p.set_defaults(handler=_index)


def _add_dataset_inputs(p: Any) -> None:
    i = p.add_argument_group("inputs")
    i.add_argument(
        "--source", nargs="+", required=True, metavar="PATH", help="source images (folders/files)"
    )
    i.add_argument(
        "--target", nargs="+", required=True, metavar="PATH", help="target images (same names)"
    )
    add_axes_option(i)
    i.add_argument(
        "--pattern", default=None, help="files taken from folders (default: all image files)"
    )
    i.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    i.add_argument(
        "--pair-by",
        choices=("name", "order"),
        default="name",
        help="pair sources and targets by relative file name or by order",
    )
    i.add_argument(
        "--index", default=None, metavar="FILE", help="index file (default: OUTPUT/index.json)"
    )
    add_reader_option(i)


def _add_dataset(sub: Any) -> None:
    p = sub.add_parser(
        "dataset",
        help="split by image + dataset statistics + training data + manifest + preview",
        description="The FLAME-CARE workflow: index the inputs, split train/test by image "
        "(never by patch), compute exact statistics of the training images, make the training "
        "data, write OUTPUT/manifest.json (every parameter) and OUTPUT/preview.png. "
        "'caredask patches --manifest OUTPUT/manifest.json' rebuilds the data bit for bit.",
        epilog=examples(
            "caredask dataset --source pairs/low --target pairs/GT --axes YX --patch-size 64 64 "
            "-k 32 -o dataset",
            "caredask dataset --source pairs/low --target pairs/GT --patch-size 64 64 -k 32 \\\n"
            "      --normalization dataset --training-format zarr -o dataset --workers 2",
        ),
        formatter_class=HelpFormatter,
    )
    _add_dataset_inputs(p)
    _add_dataset_output(p)
    _add_dataset_split(p)
    _add_dataset_patches(p)
    _add_dataset_statistics(p)
    add_mask_options(p)
    add_cluster_options(p)
    p.set_defaults(handler=_dataset)


def _add_dataset_output(p: Any) -> None:
    """The "output" options of ``caredask dataset``."""
    o = p.add_argument_group("output")
    o.add_argument("--output", "-o", required=True, metavar="DIR", help="dataset folder")
    o.add_argument("--name", default=None, help="dataset name (default: the folder's name)")
    o.add_argument(
        "--training-format",
        choices=("npz", "zarr"),
        default="npz",
        help="training data file OUTPUT/training_data.npz (csbdeep's format) or .zarr",
    )
    o.add_argument(
        "--preview", type=int, default=8, metavar="N", help="patch pairs in preview.png (0: none)"
    )
    o.add_argument("--overwrite", action="store_true", help="replace a dataset in OUTPUT")
    o.add_argument(
        "--skip-empty",
        action="store_true",
        help="skip training images without foreground (named in the manifest) instead of stopping",
    )
    add_quiet_option(o)


def _add_dataset_split(p: Any) -> None:
    """The "split by image" options of ``caredask dataset``."""
    s = p.add_argument_group("split by image")
    s.add_argument("--test-fraction", type=float, default=0.2, help="share of test images")
    s.add_argument("--seed", type=int, default=0, help="seed of patch sampling and split")
    s.add_argument("--split-seed", type=int, default=None, help="own seed for the split")
    s.add_argument(
        "--group-regex",
        default=None,
        metavar="REGEX",
        help="images whose relative paths share this match stay on one side",
    )


def _add_dataset_patches(p: Any) -> None:
    """The "patches" options of ``caredask dataset``."""
    g = p.add_argument_group("patches")
    g.add_argument(
        "--patch-size",
        type=int,
        nargs="+",
        required=True,
        metavar="N",
        help="patch size, one entry per image axis",
    )
    g.add_argument(
        "--n-patches-per-image",
        "-k",
        type=int,
        required=True,
        metavar="K",
        help="patches cut from each training image",
    )
    g.add_argument("--patch-axes", default=None, help="axes of the patches, e.g. YXC")
    g.add_argument("--no-shuffle", action="store_true", help="keep patches in sample order")
    g.add_argument("--no-filter", action="store_true", help="sample everywhere")
    g.add_argument(
        "--filter-threshold",
        type=float,
        default=0.4,
        help="csbdeep's no_background_patches threshold",
    )
    g.add_argument(
        "--filter-percentile",
        type=float,
        default=99.9,
        help="percentile the filter threshold is relative to",
    )


def _add_dataset_statistics(p: Any) -> None:
    """The "statistics and normalisation" options of ``caredask dataset``."""
    n = p.add_argument_group("statistics and normalisation")
    n.add_argument(
        "--stats-percentiles",
        type=float,
        nargs="+",
        default=None,
        metavar="Q",
        help=f"percentiles recorded in the dataset statistics (default: {_STATS_DEFAULT})",
    )
    n.add_argument(
        "--normalization",
        choices=("percentile", "dataset", "none"),
        default="percentile",
        help="csbdeep's per-image percentiles (--pmin/--pmax), the dataset's percentiles "
        "(--dataset-range), or none",
    )
    add_normalization_options(n)
    n.add_argument(
        "--dataset-range",
        type=float,
        nargs=2,
        default=(1.0, 99.8),
        metavar=("PMIN", "PMAX"),
        help="dataset percentiles used with --normalization dataset",
    )


def add_parsers(sub: Any) -> None:
    """Add the ``index`` and ``dataset`` subcommands."""
    _add_index(sub)
    _add_dataset(sub)


# --------------------------------------------------------------------------- handlers


def _index(args: argparse.Namespace) -> int:
    from ..dataset.index import Screening, build_index

    ps = None if args.patch_size is None else tuple(args.patch_size)
    idx = build_index(
        args.sources,
        args.axes,
        index_path=args.output,
        pattern=args.pattern,
        recursive=args.recursive,
        screening=Screening(args.ndim, ps, args.min_frames),
        **reader_options(args),
    )
    units = len({r.path for r in idx.records})
    print(
        f"wrote {idx.path}: {len(idx.records)} images from {units} units, "
        f"{len(idx.accepted)} accepted, {len(idx.rejected)} rejected; hashed "
        f"{len(idx.hashed)} (others unchanged)"
        + (f", {len(idx.removed)} removed" if idx.removed else "")
    )
    if not args.quiet:
        for r in idx.rejected:
            print(f"  rejected {r.path}: {r.reason}")
    return 0


def _normalization(args: argparse.Namespace) -> Any:
    if args.normalization == "none":
        return None
    if args.normalization == "dataset":
        lo, hi = args.dataset_range
        return {"mode": "dataset", "pmin": lo, "pmax": hi}
    return {
        "mode": "percentile",
        "pmin": list(args.pmin),
        "pmax": list(args.pmax),
        "relu_last": args.relu_last,
    }


def _patch_filter(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.no_filter:
        return None
    return {
        "kind": "no_background_patches",
        "threshold": args.filter_threshold,
        "percentile": args.filter_percentile,
    }


_SAME_NAME = (
    "patch_size",
    "n_patches_per_image",
    "test_fraction",
    "seed",
    "split_seed",
    "group_regex",
    "pair_by",
    "patch_axes",
    "pattern",
    "recursive",
    "preview",
    "name",
    "overwrite",
)
"""Options passed to :func:`caredask.dataset.create_dataset` under their own name."""


def _dataset_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`caredask.dataset.create_dataset` from the options."""
    from ..dataset.stats import DEFAULT_PERCENTILES

    return {
        "output": Path(args.output).resolve(),  # workers have their own working directory
        **{name: getattr(args, name) for name in _SAME_NAME},
        "percentiles": args.stats_percentiles or DEFAULT_PERCENTILES,
        "normalization": _normalization(args),
        "patch_filter": _patch_filter(args),
        "shuffle": not args.no_shuffle,
        "save_file": f"training_data.{args.training_format}",
        "index_path": args.index,
        "verbose": not args.quiet,
        "on_empty": "skip" if args.skip_empty else "raise",
        **mask_kwargs(args),
        **reader_options(args),
    }


def _report(args: argparse.Namespace, res: Any, seconds: float) -> None:
    """What ``caredask dataset`` made: split, exclusions, preview and the training data."""
    d = res.manifest.data
    print(f"dataset {d['name']} (id {d['dataset_id']}) in {args.output}:")
    print(
        f"  {len(d['split']['train'])} training / {len(d['split']['test'])} test images, "
        f"{len(d['inputs']['excluded'])} excluded"
    )
    for e in d["inputs"]["excluded"]:
        print(f"  excluded {e['key']}: {e['reason']}")
    if res.preview:
        print(f"  preview {res.preview}")
    print_summary(
        Path(args.output) / d["patches"]["save_file"],
        res.X,
        res.Y,
        res.axes,
        len(d["split"]["train"]),
        seconds,
        f"{res.manifest.path} (every parameter, split, statistics; "
        "'caredask patches --manifest' rebuilds the data from it)",
    )


def _dataset(args: argparse.Namespace) -> int:
    from ..dataset.manifest import create_dataset

    with connect(args.scheduler, args.scheduler_file, args.workers, args.timeout):
        t0 = time.perf_counter()
        res = create_dataset(args.source, args.target, args.axes, **_dataset_kwargs(args))
        _report(args, res, time.perf_counter() - t0)
    return 0


def rebuild_command(args: argparse.Namespace) -> int:
    """``caredask patches --manifest M``: rebuild a dataset's training data exactly."""
    from ..dataset.manifest import rebuild

    extra = [
        "--" + a.replace("_", "-")
        for a in ("patch_size", "n_patches_per_image", "source", "target")
        if getattr(args, a) is not None
    ] + (["BASEPATH"] if args.basepath is not None else [])
    if extra:
        raise InputError(
            f"--manifest takes the inputs and patch parameters from the manifest; drop "
            f"{' '.join(extra)}"
        )
    with connect(args.scheduler, args.scheduler_file, args.workers, args.timeout):
        out = None if args.output is None else Path(args.output).resolve()
        X, _Y, axes = rebuild(args.manifest, out, overwrite=args.overwrite, verbose=not args.quiet)
    where = args.output or "the manifest's training data file"
    print(
        f"rebuilt {where} from {args.manifest}: X {tuple(X.shape)}, axes {axes} "
        "(identical to the recorded training data)"
    )
    return 0
