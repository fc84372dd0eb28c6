"""``caredask index``, ``caredask dataset`` and ``caredask patches --manifest``.

Hooked into :mod:`caredask.cli.main` by :func:`add_parsers` (after the built-in sub-commands
exist) and :func:`handlers` (which wraps the ``patches`` handler so ``--manifest`` rebuilds a
dataset's training data instead of reading folders).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import CaredaskError
from .mask_opts import add_mask_options, mask_kwargs

__all__ = ["add_parsers", "handlers"]

Handler = Callable[[argparse.Namespace], int]


def _add_index(sub: Any) -> None:
    p = sub.add_parser("index", help="index input images: content ids, metadata, screening")
    p.add_argument("sources", nargs="+", help="files, folders or stores")
    p.add_argument("--axes", default=None, help="axes of every image (else from metadata)")
    p.add_argument("--output", "-o", default="index.json", help="index file (updated in place)")
    p.add_argument("--pattern", default=None, help="files taken from folders (default: images)")
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


def _add_dataset(sub: Any) -> None:
    p = sub.add_parser(
        "dataset", help="split by image + dataset statistics + training data + manifest + preview"
    )
    p.add_argument("--source", nargs="+", required=True, help="source images (folders/files)")
    p.add_argument("--target", nargs="+", required=True, help="target images (same names)")
    p.add_argument("--axes", default=None, help="axes of every image (else from metadata)")
    p.add_argument("--output", "-o", required=True, help="dataset folder")
    p.add_argument("--pattern", default=None, help="files taken from folders (default: images)")
    p.add_argument("--recursive", action="store_true")
    p.add_argument("--pair-by", choices=("name", "order"), default="name")
    p.add_argument("--index", default=None, help="index file (default OUTPUT/index.json)")
    p.add_argument("--name", default=None, help="dataset name (default: folder name)")
    s = p.add_argument_group("split by image")
    s.add_argument("--test-fraction", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=0, help="seed of patch sampling and split")
    s.add_argument("--split-seed", type=int, default=None, help="own seed for the split")
    s.add_argument(
        "--group-regex",
        default=None,
        help="images whose relative paths share this match stay on one side",
    )
    g = p.add_argument_group("patches")
    g.add_argument("--patch-size", type=int, nargs="+", required=True, metavar="N")
    g.add_argument("--n-patches-per-image", "-k", type=int, required=True)
    g.add_argument("--patch-axes", default=None)
    g.add_argument("--no-shuffle", action="store_true")
    g.add_argument("--save-file", default="training_data.npz", help="*.npz or *.zarr name")
    g.add_argument("--no-filter", action="store_true")
    g.add_argument("--filter-threshold", type=float, default=0.4)
    g.add_argument("--filter-percentile", type=float, default=99.9)
    n = p.add_argument_group("statistics and normalisation")
    n.add_argument(
        "--percentiles",
        type=float,
        nargs="+",
        default=None,
        metavar="Q",
        help="dataset percentiles (default 0.1 1 2 3 50 97 99 99.5 99.8 99.9)",
    )
    n.add_argument(
        "--normalization",
        choices=("percentile", "dataset", "none"),
        default="percentile",
        help="csbdeep per-image percentiles, the dataset's percentiles, or none",
    )
    n.add_argument("--pmin", type=float, nargs=2, default=(1.0, 3.0), metavar=("LO", "HI"))
    n.add_argument("--pmax", type=float, nargs=2, default=(99.5, 99.9), metavar=("LO", "HI"))
    n.add_argument("--relu-last", action="store_true")
    n.add_argument(
        "--dataset-range",
        type=float,
        nargs=2,
        default=(1.0, 99.8),
        metavar=("PMIN", "PMAX"),
        help="dataset percentiles used with --normalization dataset",
    )
    p.add_argument("--preview", type=int, default=8, help="patch pairs in preview.png (0: none)")
    add_mask_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a dataset in OUTPUT")
    p.add_argument(
        "--skip-empty",
        action="store_true",
        help="skip training images without foreground (named in the manifest) instead of stopping",
    )
    p.add_argument("--scheduler", default=None)
    p.add_argument("--quiet", "-q", action="store_true")


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


def _dataset(args: argparse.Namespace) -> int:
    from ..dataset.manifest import create_dataset
    from ..dataset.stats import DEFAULT_PERCENTILES
    from .main import scheduler

    filt = (
        None
        if args.no_filter
        else {
            "kind": "no_background_patches",
            "threshold": args.filter_threshold,
            "percentile": args.filter_percentile,
        }
    )
    with scheduler(args.scheduler):
        res = create_dataset(
            args.source,
            args.target,
            args.axes,
            output=args.output,
            patch_size=args.patch_size,
            n_patches_per_image=args.n_patches_per_image,
            test_fraction=args.test_fraction,
            seed=args.seed,
            split_seed=args.split_seed,
            group_regex=args.group_regex,
            pair_by=args.pair_by,
            percentiles=args.percentiles or DEFAULT_PERCENTILES,
            normalization=_normalization(args),
            patch_filter=filt,
            patch_axes=args.patch_axes,
            shuffle=not args.no_shuffle,
            save_file=args.save_file,
            index_path=args.index,
            pattern=args.pattern,
            recursive=args.recursive,
            preview=args.preview,
            name=args.name,
            overwrite=args.overwrite,
            verbose=not args.quiet,
            on_empty="skip" if args.skip_empty else "raise",
            **mask_kwargs(args),
        )
    d = res.manifest.data
    print(f"dataset {d['name']} (id {d['dataset_id']}) in {args.output}:")
    print(
        f"  {len(d['split']['train'])} training / {len(d['split']['test'])} test images, "
        f"{len(d['inputs']['excluded'])} excluded"
    )
    print(f"  training data {d['patches']['save_file']}: X {tuple(res.X.shape)}, axes {res.axes}")
    print(f"  manifest {res.manifest.path}" + (f", preview {res.preview}" if res.preview else ""))
    for e in d["inputs"]["excluded"]:
        print(f"  excluded {e['key']}: {e['reason']}")
    return 0


def rebuild_command(args: argparse.Namespace) -> int:
    """``caredask patches --manifest M``: rebuild a dataset's training data exactly."""
    from ..dataset.manifest import rebuild
    from .main import scheduler

    extra = [
        a for a in ("basepath", "patch_size", "n_patches_per_image") if getattr(args, a) is not None
    ]
    if extra:
        raise CaredaskError(
            f"--manifest takes the patch parameters from the manifest; drop {extra}"
        )
    with scheduler(args.scheduler):
        X, _Y, axes = rebuild(
            args.manifest, args.output, overwrite=args.overwrite, verbose=not args.quiet
        )
    where = args.output or "the manifest's training data file"
    print(
        f"rebuilt {where} from {args.manifest}: X {tuple(X.shape)}, axes {axes} "
        "(identical to the recorded training data)"
    )
    return 0


def handlers() -> dict[str, Handler]:
    """Handlers of ``index`` and ``dataset``."""
    return {"index": _index, "dataset": _dataset}
