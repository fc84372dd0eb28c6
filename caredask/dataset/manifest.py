"""Dataset manifests: pairs, a seeded split by image, dataset statistics and patch parameters.

:func:`create_dataset` indexes the source and target images, pairs them, splits the pairs into
training and test images (never patches: every patch of an image is on one side), computes exact
per-channel statistics of the training images only, generates the training patches and writes,
beside them, ``manifest.json`` (schema ``caredask.dataset/1``) and a preview PNG.  The manifest
holds everything needed to make the same training data again: :func:`rebuild` regenerates them
bit-identically (checked against the content digest recorded in the manifest).

Split.  Pairs are grouped (pairs whose ``group_regex`` match is equal, and pairs sharing content
ids, end up in one group), groups are ordered by label (content ids by default, so listing order
and renames do not matter) and permuted with ``numpy.random.default_rng(seed)``; the first
``round(test_fraction * n_groups)`` groups (at least one when ``test_fraction > 0``) are the test
set.  At least one group must remain for training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..loaders import LazyImage
from ..rawdata import RawData
from .index import Index, build_index, unit_digest, unit_signature
from .pairing import Pair, keyed_records, pair_records, record_entry, split_groups
from .pairing import group_labels as _group_labels
from .preview import write_preview
from .recipe import (
    DEFAULT_FILTER,
    MANIFEST_SCHEMA,
    Manifest,
    make_filter,
    make_normalization,
    manifest_data,
    manifest_inputs,
    mask_spec,
    normalization_spec,
    open_entries,
    open_mask_list,
    training_digest,
    training_raw_data,
)
from .records import Screening
from .stats import DEFAULT_PERCENTILES, StreamStatistics, dataset_statistics
from .units import expand_sources

__all__ = [
    "MANIFEST_SCHEMA",
    "DatasetResult",
    "Manifest",
    "create_dataset",
    "rebuild",
    "split_groups",
    "training_digest",
]


# --------------------------------------------------------------------------- manifest


# --------------------------------------------------------------------------- create


@dataclass
class DatasetResult:
    """What :func:`create_dataset` made."""

    manifest: Manifest
    X: Any
    Y: Any
    axes: str
    index: Index
    preview: Path | None


def _check_output(out: Path, save_file: str, overwrite: bool) -> None:
    if not save_file.endswith((".npz", ".zarr")) or Path(save_file).name != save_file:
        raise InputError(f"save_file={save_file!r}: give a file name ending in .npz or .zarr")
    existing = [p for p in (out / "manifest.json", out / save_file) if os.path.lexists(p)]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]} exists: {out} already holds a dataset; choose another output folder "
            "or pass overwrite=True (--overwrite)"
        )


def _checked_specs(
    options: dict[str, Any], normalization: Any, patch_filter: Any
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The normalisation and filter specs to record; refuses options JSON cannot record."""
    try:
        json.dumps(options)
    except TypeError as e:
        raise InputError(
            f"loader options {sorted(options)} must be JSON-serialisable to be recorded in the "
            f"manifest ({e}); pass numbers, strings and lists"
        ) from None
    norm_spec = normalization_spec(normalization)
    filt_spec = DEFAULT_FILTER if patch_filter == "default" else patch_filter
    if isinstance(filt_spec, str):
        raise InputError(f"patch_filter={patch_filter!r}: use 'default', a dict or None")
    make_filter(filt_spec)
    return norm_spec, filt_spec


def _indexed_pairs(
    source: Any,
    target: Any,
    axes: str | None,
    listing: dict[str, Any],
    index_path: Path,
    screening: Screening,
    pair_by: str,
    options: dict[str, Any],
) -> tuple[Index, list[Pair], list[dict[str, Any]]]:
    """Index both sides, then pair their images; refuses when no pair is usable."""
    src_units = expand_sources(source, listing["pattern"], listing["recursive"])
    tgt_units = expand_sources(target, listing["pattern"], listing["recursive"])
    paths = [u.path for u in src_units + tgt_units]
    index = build_index(
        paths, axes, index_path=index_path, screening=screening, **listing, **options
    )
    src, tgt = keyed_records(src_units, index), keyed_records(tgt_units, index)
    pairs, excluded = pair_records(src, tgt, pair_by)
    if not pairs:
        reasons = "; ".join(f"{e['key']}: {e['reason']}" for e in excluded[:5])
        raise InputError(f"no usable source/target pair in {source} and {target} ({reasons})")
    return index, pairs, excluded


def _training_images(
    pairs: list[Pair], axes: str | None, options: dict[str, Any], percentiles: Sequence[float]
) -> tuple[list[LazyImage], list[LazyImage], tuple[StreamStatistics, StreamStatistics]]:
    """The training pairs' images, opened, and their dataset statistics (source, target)."""
    xs = open_entries([record_entry(s) for _, s, _ in pairs], axes, options)
    ys = open_entries([record_entry(t) for _, _, t in pairs], axes, options)
    src_st, tgt_st = dataset_statistics(
        [[x.data for x in xs], [y.data for y in ys]],
        [[x.axes for x in xs], [y.axes for y in ys]],
        percentiles,
    )
    return xs, ys, (src_st, tgt_st)


def _split_record(
    pairs: list[Pair],
    train: list[int],
    test: list[int],
    seed: int,
    test_fraction: float,
    group_regex: str | None,
) -> dict[str, Any]:
    """The manifest's ``split``: its parameters and the keys of the training and test pairs."""
    return {
        "unit": "image",
        "seed": seed,
        "test_fraction": test_fraction,
        "group_regex": group_regex,
        "train": [pairs[i][0] for i in train],
        "test": [pairs[i][0] for i in test],
    }


def _generate(
    raw: RawData,
    patches: dict[str, Any],
    save_file: Path,
    normalization: Any,
    on_empty: str,
    **kwargs: Any,
) -> tuple[Any, Any, str]:
    """:func:`~caredask.generate_training_data` with the recorded patch parameters."""
    from ..sampling.create import generate_training_data

    return generate_training_data(
        raw,
        patches["patch_size"],
        patches["n_patches_per_image"],
        seed=patches["seed"],
        patch_axes=patches["patch_axes"],
        save_file=save_file,
        patch_filter=make_filter(patches["filter"]),
        normalization=normalization,
        shuffle=patches["shuffle"],
        on_empty=on_empty,
        **kwargs,
    )


# Long only by its signature and numpydoc (the public API's 30 parameters); the body is steps.
def create_dataset(
    source: Any,
    target: Any,
    axes: str | None = None,
    *,
    output: str | os.PathLike[str],
    patch_size: Sequence[int],
    n_patches_per_image: int,
    test_fraction: float = 0.2,
    seed: int = 0,
    split_seed: int | None = None,
    group_regex: str | None = None,
    pair_by: str = "name",
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    normalization: str | dict[str, Any] | None = "percentile",
    patch_filter: dict[str, Any] | str | None = "default",
    patch_axes: str | None = None,
    shuffle: bool = True,
    save_file: str = "training_data.npz",
    index_path: str | os.PathLike[str] | None = None,
    pattern: str | None = None,
    recursive: bool = False,
    preview: int = 8,
    name: str | None = None,
    overwrite: bool = False,
    verbose: bool = False,
    mask: Any = None,
    mask_label: str | None = None,
    mask_values: Sequence[int] | None = None,
    mask_axes: str | None = None,
    on_empty: str = "raise",
    **options: Any,
) -> DatasetResult:
    """Index, pair, split, compute statistics, make training data, write manifest and preview.

    Parameters
    ----------
    source, target : path or list of paths
        Source and target images (files, folders, stores); see :func:`build_index`.
    axes : str, optional
        Axes of every image (from metadata when omitted).
    output : path
        Folder for ``manifest.json``, the training data, ``preview.png`` (and ``index.json``
        unless ``index_path`` is given).
    patch_size, n_patches_per_image, patch_axes, shuffle
        As for :func:`caredask.generate_training_data`.
    test_fraction, split_seed, group_regex
        Split by image (see module doc); ``split_seed`` defaults to ``seed``.
    seed : int
        Seed of the patch sampling (and of the split unless ``split_seed``).
    pair_by : {'name', 'order'}
        Pair sources and targets by relative path (default) or by listing order.
    percentiles : sequence of float
        Percentiles of the dataset statistics.
    normalization : {'percentile', 'dataset'}, dict or None
        csbdeep's per-image random percentiles (default), the dataset's pooled percentiles
        (``{'mode': 'dataset', 'pmin': 1.0, 'pmax': 99.8}``), or none.  A dict overrides the
        defaults of its mode.
    patch_filter : 'default', dict or None
        ``no_background_patches(0.4, 99.9)``, ``{'kind': 'no_background_patches',
        'threshold': t, 'percentile': p}``, or no filter.
    save_file : str
        Name of the training data file in ``output`` (``*.npz`` or ``*.zarr``).
    preview : int
        Patch pairs in ``preview.png`` (0: none).
    overwrite : bool
        Replace an existing dataset in ``output``.
    on_empty : {'raise', 'skip'}
        Training images without foreground stop the build, or are skipped (named in the
        manifest, ``patches.skipped``).
    mask, mask_label, mask_values, mask_axes
        Pixel masks as for :meth:`caredask.RawData.from_sources` (mask paths are paired with
        the training images by name); recorded in the manifest for :func:`rebuild`.
    **options
        Loader options (JSON-serialisable) for :func:`caredask.open_images`.

    Raises
    ------
    InputError
        An existing dataset in ``output``, no usable pair, a bad split or parameter.
    """
    out = Path(output)
    _check_output(out, save_file, overwrite)
    norm_spec, filt_spec = _checked_specs(options, normalization, patch_filter)
    split_seed = seed if split_seed is None else split_seed
    ps = tuple(int(p) for p in patch_size)
    ipath = Path(index_path) if index_path is not None else out / "index.json"
    listing = {"pattern": pattern, "recursive": recursive}
    screening = Screening(patch_size=ps if patch_axes is None else None)
    index, pairs, excluded = _indexed_pairs(
        source, target, axes, listing, ipath, screening, pair_by, options
    )
    train, test = split_groups(_group_labels(pairs, group_regex), test_fraction, split_seed)
    opts = index.params["options"]
    xs, ys, stats = _training_images([pairs[i] for i in train], axes, opts, percentiles)
    norm = make_normalization(norm_spec, lambda: stats)
    masks = mask_spec(mask, mask_label, mask_values, mask_axes)
    patches: dict[str, Any] = {
        "patch_size": list(ps),
        "n_patches_per_image": int(n_patches_per_image),
        "patch_axes": patch_axes,
        "seed": seed,
        "shuffle": shuffle,
        "filter": filt_spec,
        "mask": masks,
        "normalization": norm_spec,
        "save_file": save_file,
    }
    raw = training_raw_data(xs, ys, open_mask_list(xs, ys, axes, masks, opts))
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    X, Y, axes_out = _generate(
        raw,
        patches,
        out / save_file,
        norm,
        on_empty,
        overwrite=overwrite,
        verbose=verbose,
        summary=done,
    )
    pv = (
        write_preview(X, Y, axes_out, out / "preview.png", n=preview, seed=seed)
        if preview
        else None
    )
    patches |= {"axes": axes_out, "n_patches": int(X.shape[0]), "on_empty": on_empty}
    patches |= {"skipped": done["skipped"], "content_sha256": training_digest(X, Y, axes_out)}
    split = _split_record(pairs, train, test, split_seed, test_fraction, group_regex)
    data = manifest_data(
        name or out.name,
        os.path.relpath(ipath, out),
        {"axes": axes, "options": opts, **listing},
        manifest_inputs(pair_by, pairs, excluded),
        split,
        stats,
        len(train),
        patches,
        pv,
    )
    manifest = Manifest(data)
    manifest.save(out / "manifest.json")
    return DatasetResult(manifest, X, Y, axes_out, index, pv)


# --------------------------------------------------------------------------- rebuild


def _verify_input(e: dict[str, Any]) -> None:
    path = e["path"]
    if not os.path.exists(path):
        raise InputError(f"{path}: input of the manifest is missing; restore it to rebuild")
    if unit_signature(path) == (e["size"], e["mtime_ns"]):
        return
    if unit_digest(path) != e["sha256"]:
        raise InputError(
            f"{path}: content changed since the manifest was written (sha256 differs); the "
            "training data cannot be rebuilt exactly - restore the file or make a new dataset"
        )


def rebuild(
    manifest: Manifest | str | os.PathLike[str],
    save_file: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    verify: bool = True,
    verbose: bool = False,
) -> tuple[Any, Any, str]:
    """Regenerate a manifest's training data exactly.

    Parameters
    ----------
    manifest : Manifest or path
        The dataset manifest.
    save_file : path, optional
        Where to write (default: the manifest's training data file).
    overwrite : bool
        Replace an existing ``save_file``.
    verify : bool
        Check that every training input still has its recorded content (files whose size and
        mtime changed are hashed again), and that the result has the recorded digest.

    Returns
    -------
    X, Y, axes
        As :func:`caredask.generate_training_data` returns them.

    Raises
    ------
    InputError
        A missing or changed input, an existing ``save_file``, or a result that differs.
    """
    m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
    dest = Path(save_file) if save_file is not None else m.training_path()
    if os.path.lexists(dest) and not overwrite:
        raise InputError(f"{dest} exists; pass overwrite=True (--overwrite) or another file")
    if verify:
        for p in m.train_pairs:
            _verify_input(p["source"])
            _verify_input(p["target"])
    pp = m.data["patches"]
    on_empty = pp.get("on_empty", "raise")
    X, Y, axes = _generate(
        m.raw_data(), pp, dest, m.normalization(), on_empty, overwrite=overwrite, verbose=verbose
    )
    if verify and training_digest(X, Y, axes) != pp["content_sha256"]:
        raise InputError(
            f"rebuilt training data in {dest} differ from the manifest's (content sha256); the "
            f"inputs or caredask ({__version__} vs {m.data['caredask_version']}) changed"
        )
    return X, Y, axes
