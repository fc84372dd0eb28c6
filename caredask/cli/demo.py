"""``caredask demo``: a small synthetic dataset turned into training data, end to end."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .cluster import add_cluster_options, connect
from .common import HelpFormatter, examples, print_summary

__all__ = ["add_parser", "run", "run_demo"]


def add_parser(sub: Any) -> None:
    """Add ``caredask demo``."""
    p = sub.add_parser(
        "demo",
        help="write a small synthetic dataset and make training data from it, end to end",
        description="Write 4 synthetic 32x256x256 uint16 source/target TIFF pairs to OUTPUT/data "
        "(OUTPUT/data/low, OUTPUT/data/GT) and make OUTPUT/training_data.npz (128 patches of "
        "16x64x64), "
        "the same file csbdeep's create_patches makes for seed 0.",
        epilog=examples(
            "caredask demo",
            "caredask demo -o /tmp/caredask-demo --workers 2",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--output",
        "-o",
        "--out",
        default="caredask-demo",
        metavar="DIR",
        help="folder for the demo's data and training data",
    )
    add_cluster_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``caredask demo``."""
    with connect(args.scheduler, args.scheduler_file, args.workers, args.timeout):
        run_demo(Path(args.output))
    return 0


def run_demo(out: Path) -> Path:
    """Write 4 synthetic 3D TIFF pairs under ``out/data`` and make ``out/training_data.npz``."""
    from ..dataset.synthetic import write_tiff_pairs
    from ..rawdata import RawData
    from ..sampling.create import generate_training_data
    from ..writers.load import load_training_data

    data = out / "data"
    print(f"writing 4 synthetic source/target TIFF pairs (32x256x256 uint16) to {data}")
    write_tiff_pairs(data, 4, (32, 256, 256), seed=0)
    raw = RawData.from_folder(data, ["low"], "GT", axes="ZYX")
    target = out / "training_data.npz"
    t0 = time.perf_counter()
    X, Y, axes = generate_training_data(
        raw, (16, 64, 64), 32, seed=0, save_file=target, verbose=True
    )
    dt = time.perf_counter() - t0
    print_summary(target, X, Y, axes, 4, dt, "none in .npz (csbdeep's format: X, Y, axes only)")
    (Xt, _), val, axes_l = load_training_data(target, validation_split=0.1)
    n_val = 0 if val is None else len(val[0])
    print(f"  load_training_data: {len(Xt)} training + {n_val} validation patches, axes {axes_l}")
    print(
        f"same data with csbdeep: np.random.seed(0); csbdeep.data.create_patches("
        f"RawData.from_folder('{data}', ['low'], 'GT', axes='ZYX'), (16, 64, 64), 32)"
    )
    return target
