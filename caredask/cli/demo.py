"""``caredask demo``: a small synthetic dataset turned into training data, end to end."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["run_demo"]


def run_demo(out: Path) -> Path:
    """Write 4 synthetic 3D TIFF pairs under ``out/data`` and make ``out/training_data.npz``."""
    from ..rawdata import RawData
    from ..sampling.create import generate_training_data
    from ..synthetic import write_tiff_pairs
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
    (Xt, _), val, axes_l = load_training_data(target, validation_split=0.1)
    n_val = 0 if val is None else len(val[0])
    print(f"training data: {target}  ({dt:.1f} s)")
    print(f"  X {X.shape} float32, Y {Y.shape} float32, axes {axes}")
    print(
        f"  X range [{np.min(X):.2f}, {np.max(X):.2f}], Y range [{np.min(Y):.2f}, "
        f"{np.max(Y):.2f}] (percentile-normalised)"
    )
    print(f"  load_training_data: {len(Xt)} training + {n_val} validation patches, axes {axes_l}")
    print(
        f"same data with csbdeep: np.random.seed(0); csbdeep.data.create_patches("
        f"RawData.from_folder('{data}', ['low'], 'GT', axes='ZYX'), (16, 64, 64), 32)"
    )
    return target
