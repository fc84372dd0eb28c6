"""The ``caredask`` command line: ``patches``, ``inspect`` and ``demo``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import CaredaskError
from .dataset_cmd import add_parsers, handlers, rebuild_command
from .mask_opts import add_mask_options, mask_kwargs
from .preview_cmd import add_parser as add_preview_parser
from .preview_cmd import check_preview_option, patches_preview
from .preview_cmd import run as run_preview

__all__ = ["build_parser", "main"]


def _add_patch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("patches (csbdeep's create_patches options)")
    g.add_argument(
        "--patch-size",
        type=int,
        nargs="+",
        metavar="N",
        help="patch size, one entry per axis, e.g. 16 64 64",
    )
    g.add_argument("--n-patches-per-image", "-k", type=int)
    g.add_argument("--patch-axes", default=None, help="axes of the patches, e.g. YXC")
    g.add_argument("--no-shuffle", action="store_true", help="keep patches in sample order")
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (same result as np.random.seed(SEED) before csbdeep)",
    )
    f = p.add_argument_group("filter and normalisation")
    f.add_argument("--no-filter", action="store_true", help="sample everywhere (patch_filter=None)")
    f.add_argument("--filter-threshold", type=float, default=0.4)
    f.add_argument("--filter-percentile", type=float, default=99.9)
    f.add_argument("--no-normalization", action="store_true", help="normalization=None")
    f.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        default=None,
        metavar=("PMIN", "PMAX"),
        help="fixed percentiles instead of random ones per patch",
    )
    f.add_argument("--pmin", type=float, nargs=2, default=(1.0, 3.0), metavar=("LO", "HI"))
    f.add_argument("--pmax", type=float, nargs=2, default=(99.5, 99.9), metavar=("LO", "HI"))
    f.add_argument("--relu-last", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``caredask`` command."""
    ap = argparse.ArgumentParser(prog="caredask", description=__doc__)
    ap.add_argument("--version", action="version", version=f"caredask {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("patches", help="training patches from source/target images")
    p.add_argument("basepath", nargs="?", help="folder holding the source and target folders")
    p.add_argument(
        "--source",
        nargs="+",
        help="instead of BASEPATH: source files, folders, "
        "Zarr/OME-Zarr stores, URIs or CZI files (any format), paired with --target",
    )
    p.add_argument("--target", nargs="+", help="target images, in the same order as --source")
    p.add_argument(
        "--manifest",
        default=None,
        help="rebuild the training data of a dataset "
        "manifest (patch options come from it; --output overrides where)",
    )
    p.add_argument("--source-dirs", nargs="+", default=["low"], help="source folders")
    p.add_argument("--target-dir", default="GT", help="target folder")
    p.add_argument(
        "--axes",
        default="CZYX",
        help="axes, right-aligned to each image (with "
        "--source: taken from the files' metadata unless given)",
    )
    p.add_argument("--pattern", default="*.tif*", help="glob pattern of the image files")
    p.add_argument("--sort", action="store_true", help="natural file order (csbdeep: dir order)")
    p.add_argument("--output", "-o", help="output file: *.npz or *.zarr")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument(
        "--scheduler",
        default=None,
        help="dask scheduler: threads, processes, synchronous or a cluster ADDRESS",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--memory",
        default=None,
        metavar="SIZE",
        help="memory the batches in flight may hold, e.g. 4GiB (default: 2 GiB locally, half "
        "the workers' memory on a cluster)",
    )
    p.add_argument(
        "--skip-empty",
        action="store_true",
        help="skip images the filter leaves nothing to sample from (named in the output) "
        "instead of stopping",
    )
    p.add_argument(
        "--allow-nonfinite",
        action="store_true",
        help="keep images with NaN or infinite values (csbdeep's behaviour: NaN patches) "
        "instead of refusing them",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted .zarr run of this output instead of resuming it",
    )
    p.add_argument("--preview", default=None, metavar="FILE.png", help="PNG of what was sampled")
    _add_patch_options(p)
    add_mask_options(p)
    i = sub.add_parser("inspect", help="what each image of a source looks like to caredask")
    i.add_argument("path", nargs="+", help="files, folders, stores or URIs")
    i.add_argument("--axes", default=None, help="axes when the files have no metadata")
    d = sub.add_parser("demo", help="write a small synthetic dataset and make training data")
    d.add_argument("--out", default="caredask-demo", help="folder for the demo data")
    d.add_argument("--scheduler", default=None)
    add_parsers(sub)
    add_preview_parser(sub)
    return ap


@contextlib.contextmanager
def scheduler(spec: str | None) -> Iterator[None]:
    """Use a local dask scheduler by name, or connect to a cluster by address."""
    import dask

    if spec is None:
        yield
    elif spec in ("threads", "processes", "synchronous", "sync"):
        with dask.config.set(scheduler=spec):
            yield
    else:
        from distributed import Client

        with Client(spec) as client:
            print(f"Using dask cluster at {client.scheduler.address}", file=sys.stderr)
            yield


def _normalization(args: argparse.Namespace) -> Any:
    from ..statistics.normalize import PercentileNormalization, sample_percentiles

    if args.no_normalization:
        return None
    if args.percentiles is not None:
        return PercentileNormalization(tuple(args.percentiles), args.relu_last)
    return PercentileNormalization(
        sample_percentiles(tuple(args.pmin), tuple(args.pmax)), args.relu_last
    )


def _patches(args: argparse.Namespace) -> int:
    from ..masks.filters import no_background_patches
    from ..rawdata import RawData
    from ..sampling.create import generate_training_data

    if args.manifest:
        return rebuild_command(args)
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
        raise CaredaskError(
            f"patches needs BASEPATH (csbdeep's folder layout) or --source/--target, and "
            f"{', '.join(missing) or 'its options'}; or --manifest to rebuild a dataset"
        )
    out = Path(args.output)
    if out.suffix not in (".npz", ".zarr"):
        raise CaredaskError(f"--output {out}: use a file name ending in .npz or .zarr")
    if out.exists() and not args.overwrite:
        raise CaredaskError(f"{out} exists; pass --overwrite to replace it or choose another name")
    check_preview_option(args, out)
    masks = mask_kwargs(args)
    if args.source is not None:
        if args.target is None:
            raise CaredaskError("--source needs --target (one target per source, same order)")
        axes = None if args.axes == "CZYX" else args.axes
        raw = RawData.from_sources(_one(args.source), _one(args.target), axes, **masks)
    elif masks:
        raise CaredaskError(
            "--mask/--mask-label need --source/--target (not BASEPATH): e.g. --source "
            "BASEPATH/low --target BASEPATH/GT --mask BASEPATH/masks"
        )
    else:
        raw = RawData.from_folder(
            args.basepath,
            args.source_dirs,
            args.target_dir,
            args.axes,
            args.pattern,
            sort=args.sort,
        )
    filt = (
        None
        if args.no_filter
        else no_background_patches(args.filter_threshold, args.filter_percentile)
    )
    done: dict[str, Any] = {}
    with scheduler(args.scheduler):
        X, Y, axes = generate_training_data(
            raw,
            args.patch_size,
            args.n_patches_per_image,
            seed=args.seed,
            patch_axes=args.patch_axes,
            save_file=out,
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
    for name in done.get("skipped", []):
        print(f"skipped (no foreground): {name}", file=sys.stderr)
    print(f"wrote {out}: X {tuple(X.shape)}, Y {tuple(Y.shape)}, axes {axes}")
    png = patches_preview(args, out, list(getattr(raw.generator, "_caredask_names", [])))
    if png is not None:
        print(f"wrote {png}")
    return 0


def _one(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def describe(paths: Sequence[str], axes: str | None) -> list[dict[str, Any]]:
    """One row per image: name, source, shape, axes, dtype, chunks."""
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
                }
            )
    return rows


def _inspect(args: argparse.Namespace) -> int:
    for r in describe(args.path, args.axes):
        print(
            f"{r['name']}\n  source: {r['source']}\n  shape:  {r['shape']}  axes: {r['axes']}"
            f"  dtype: {r['dtype']}\n  chunks: {r['chunks']} ({r['n_chunks']} chunks)"
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    with scheduler(args.scheduler):
        run_demo(Path(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``caredask`` command."""
    args = build_parser().parse_args(argv)
    try:
        cmds = {"patches": _patches, "inspect": _inspect, "demo": _demo, **handlers()}
        cmds["preview"] = run_preview
        return cmds[args.command](args)
    except CaredaskError as e:
        print(f"caredask: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
