"""FLAME-CARE's dataset workflow with caredask, end to end, on synthetic multi-frame stacks.

Runs the same steps as the README's command lines (printed as they run):

1. write raw stacks: 8 frames of 256x256 uint16 each (axes TYX), plus two that fail screening
   (a 4-frame stack and a corrupt file);
2. ``caredask index raw --axes TYX --min-frames 8``: content ids, metadata, screening reasons;
3. accumulate frames of every accepted stack: source = sum of the first 2 frames, target = sum
   of all 8, in an explicit uint32 accumulator (``caredask.transforms.frames.accumulate_image``);
4. ``caredask dataset``: seeded split by image, exact dataset statistics of the training images,
   training patches normalised with the dataset's percentiles, manifest and preview;
5. ``caredask patches --manifest``: rebuild the training data exactly from the manifest.

Usage: ``python examples/flame_example.py --out DIR`` (about 10 s).
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np
import tifffile

from caredask.cli.main import main as caredask
from caredask.dataset import Index, Manifest
from caredask.dataset.synthetic import synthetic_pair
from caredask.loaders import LazyImage, open_images
from caredask.transforms.frames import accumulate_image

N_STACKS, N_FRAMES, SHAPE, GAIN = 6, 8, (256, 256), 8.0


def write_raw(raw: Path) -> None:
    """Raw stacks: each frame is Poisson(clean / GAIN) * GAIN of one clean synthetic image."""
    raw.mkdir(parents=True, exist_ok=True)
    for i in range(N_STACKS + 1):
        clean = synthetic_pair(SHAPE, seed=i, dense=True)[1].astype(np.float64)
        rng = np.random.default_rng(i)
        n = N_FRAMES if i < N_STACKS else 4  # the last one is too short
        frames = (rng.poisson(clean / GAIN, size=(n, *SHAPE)) * GAIN).astype(np.uint16)
        tifffile.imwrite(raw / f"tile_{i:02d}.tif", frames, imagej=True, metadata={"axes": "TYX"})
    (raw / "tile_broken.tif").write_bytes(b"II*\0 not really a TIFF")


def run(cmd: str) -> None:
    """Run one ``caredask ...`` command line (as in the README) in-process."""
    print(f"\n$ {cmd}")
    code = caredask(shlex.split(cmd)[1:])
    if code != 0:
        raise SystemExit(f"command failed ({code}): {cmd}")


def sum_first_frames(stack: LazyImage, n: int) -> LazyImage:
    """Sum of the first ``n`` frames (axis T) in a uint32 accumulator, lazily."""
    return accumulate_image(stack, n, "T", dtype="uint32")


def accumulate(index_file: Path, out: Path) -> None:
    """Source = first 2 frames, target = all 8 frames, for every accepted raw stack."""
    for rec in Index.load(index_file).accepted:
        (stack,) = open_images(rec.path, "TYX")
        for folder, frames in (("low", 2), ("GT", N_FRAMES)):
            img = sum_first_frames(stack, frames)
            (out / folder).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(out / folder / Path(rec.path).name, img.data.compute())
    print(f"accumulated frames of {len(Index.load(index_file).accepted)} stacks into {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="flame-example", help="folder for all outputs (new)")
    out = Path(ap.parse_args().out)
    if (out / "dataset" / "manifest.json").exists():
        raise SystemExit(f"{out} already holds the example's dataset; pass another --out")
    write_raw(out / "raw")
    run(
        f"caredask index {out / 'raw'} --axes TYX --min-frames {N_FRAMES} "
        f"--output {out / 'raw_index.json'}"
    )
    accumulate(out / "raw_index.json", out / "pairs")
    run(
        f"caredask dataset --source {out / 'pairs/low'} --target {out / 'pairs/GT'} --axes YX "
        "--test-fraction 0.2 --seed 0 --patch-size 64 64 -k 32 --normalization dataset "
        f"--output {out / 'dataset'} --quiet"
    )
    manifest = Manifest.load(out / "dataset" / "manifest.json")
    st = manifest.statistics("target")
    print(
        f"target statistics (training images only): p1 {st.value(1.0)}, "
        f"p99.8 {st.value(99.8)}, mean {st.mean}, std {st.std}"
    )
    run(
        f"caredask patches --manifest {out / 'dataset/manifest.json'} "
        f"--output {out / 'rebuilt.npz'} --quiet"
    )
    a, b = np.load(out / "dataset/training_data.npz"), np.load(out / "rebuilt.npz")
    assert np.array_equal(a["X"], b["X"]) and np.array_equal(a["Y"], b["Y"])
    print("rebuilt training data are bit-identical; manifest summary:")
    print(json.dumps({k: manifest.data[k] for k in ("name", "dataset_id", "split")}, indent=1))


if __name__ == "__main__":
    main()
