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

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..loaders import LazyImage, open_images
from ..loaders.registry import natural_key
from ..masks.filters import no_background_patches
from ..rawdata import RawData, open_masks
from ..statistics.normalize import PercentileNormalization, sample_percentiles
from ..transforms import mark_rng_free
from .index import (
    ImageRecord,
    Index,
    Screening,
    Unit,
    build_index,
    expand_sources,
    read_json,
    unit_digest,
    unit_signature,
    write_json_atomic,
)
from .preview import write_preview
from .stats import DEFAULT_PERCENTILES, StreamStatistics, dataset_normalization, dataset_statistics

__all__ = [
    "MANIFEST_SCHEMA",
    "DatasetResult",
    "Manifest",
    "create_dataset",
    "rebuild",
    "split_groups",
    "training_digest",
]

MANIFEST_SCHEMA = "caredask.dataset/1"
NORMALIZATIONS: dict[str, dict[str, Any]] = {
    "percentile": {
        "mode": "percentile",
        "pmin": [1.0, 3.0],
        "pmax": [99.5, 99.9],
        "relu_last": False,
    },
    "dataset": {"mode": "dataset", "pmin": 1.0, "pmax": 99.8},
}
DEFAULT_FILTER = {"kind": "no_background_patches", "threshold": 0.4, "percentile": 99.9}


# --------------------------------------------------------------------------- pairing


def _entry(rec: ImageRecord) -> dict[str, Any]:
    keys = ("id", "path", "image", "name", "size", "mtime_ns", "sha256")
    return {k: getattr(rec, k) for k in keys}


def _keyed(units: list[Unit], index: Index) -> dict[str, ImageRecord]:
    out: dict[str, ImageRecord] = {}
    for u in units:
        recs = index.for_unit(u.path)
        for r in recs:
            out[u.rel if len(recs) == 1 else f"{u.rel}#{r.image}"] = r
    return out


def _pair_reason(s: ImageRecord, t: ImageRecord) -> str | None:
    if not s.ok:
        return f"source rejected: {s.reason}"
    if not t.ok:
        return f"target rejected: {t.reason}"
    if s.shape != t.shape or s.axes != t.axes:
        return f"source {s.shape} {s.axes} and target {t.shape} {t.axes} differ in shape or axes"
    return None


def _pairs(
    src: dict[str, ImageRecord], tgt: dict[str, ImageRecord], pair_by: str
) -> tuple[list[tuple[str, ImageRecord, ImageRecord]], list[dict[str, Any]]]:
    excluded: list[dict[str, Any]] = []
    if pair_by == "name":
        raw = [(k, s, tgt[k]) for k, s in src.items() if k in tgt]
        excluded += [
            {"key": k, "reason": "no target image of this name"} for k in src if k not in tgt
        ]
        excluded += [
            {"key": k, "reason": "no source image of this name"} for k in tgt if k not in src
        ]
    elif pair_by == "order":
        raw = [(k, s, t) for (k, s), t in zip(src.items(), tgt.values(), strict=False)]
        extra = list(src)[len(tgt) :] + list(tgt)[len(src) :]
        excluded += [{"key": k, "reason": "unpaired (different image counts)"} for k in extra]
    else:
        raise InputError(f"pair_by={pair_by!r}: use 'name' or 'order'")
    pairs: list[tuple[str, ImageRecord, ImageRecord]] = []
    for k, s, t in raw:
        reason = _pair_reason(s, t)
        if (
            reason is None
            and pairs
            and (s.axes, s.channels) != (pairs[0][1].axes, pairs[0][1].channels)
        ):
            first = pairs[0][1]
            reason = (
                f"axes {s.axes} with {s.channels} channel(s) differ from the dataset's "
                f"{first.axes} with {first.channels}"
            )
        if reason is None:
            pairs.append((k, s, t))
        else:
            excluded.append({"key": k, "source": s.path, "target": t.path, "reason": reason})
    return pairs, excluded


# --------------------------------------------------------------------------- split


def _group_labels(
    pairs: list[tuple[str, ImageRecord, ImageRecord]], group_regex: str | None
) -> list[str]:
    """A group label per pair: regex match (or source id), merged over shared content ids."""
    labels = []
    for k, s, _ in pairs:
        m = re.search(group_regex, k) if group_regex else None
        labels.append((m.group(1) if m and m.groups() else m.group(0)) if m else str(s.id or k))
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, (_, s, t) in enumerate(pairs):
        for key in (f"label:{labels[i]}", f"id:{s.id}", f"id:{t.id}"):
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    rep: dict[int, str] = {}
    for i in range(len(pairs)):
        r = find(i)
        rep[r] = min(rep.get(r, labels[i]), labels[i])
    return [rep[find(i)] for i in range(len(pairs))]


def split_groups(
    labels: Sequence[str], test_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of the training and test items: whole groups, seeded (see module doc).

    Raises
    ------
    InputError
        ``test_fraction`` outside ``[0, 1)`` or no group left for training.
    """
    if not 0 <= test_fraction < 1:
        raise InputError(f"test_fraction={test_fraction} must be in [0, 1)")
    groups = sorted(set(labels), key=natural_key)
    n_test = round(test_fraction * len(groups))
    n_test = max(n_test, 1) if test_fraction > 0 else 0
    if n_test >= len(groups):
        raise InputError(
            f"test_fraction={test_fraction} leaves no training images: {len(groups)} image "
            "group(s) in all; add images or lower the test fraction"
        )
    perm = np.random.default_rng(seed).permutation(len(groups))
    test = {groups[i] for i in perm[:n_test]}
    train_idx = [i for i, g in enumerate(labels) if g not in test]
    test_idx = [i for i, g in enumerate(labels) if g in test]
    return train_idx, test_idx


# --------------------------------------------------------------------------- manifest


def _open_entry(e: dict[str, Any], axes: str | None, options: dict[str, Any]) -> LazyImage:
    images = open_images(e["path"], axes, **options)
    return images[int(e["image"] or 0)]


def _raw_data(xs: list[LazyImage], ys: list[LazyImage], masks: list[Any] | None = None) -> RawData:
    def _gen() -> Iterator[Any]:
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            yield x.data, y.data, x.axes, None if masks is None else masks[i]

    gen: Any = mark_rng_free(_gen)  # type: ignore[arg-type]
    gen._caredask_names = [x.source or x.name for x in xs]
    return RawData(gen, len(xs), f"caredask dataset: {len(xs)} training pairs")


@dataclass
class Manifest:
    """A dataset manifest (the JSON content) and where it lives."""

    data: dict[str, Any]
    path: Path | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read and check a ``manifest.json``."""
        return cls(read_json(path, MANIFEST_SCHEMA, "dataset manifest"), Path(path))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest (atomically)."""
        write_json_atomic(path, self.data)
        self.path = Path(path)
        return self.path

    def _pairs(self, subset: str) -> list[dict[str, Any]]:
        keys = self.data["split"][subset]
        by_key = {p["key"]: p for p in self.data["inputs"]["pairs"]}
        return [by_key[k] for k in keys]

    @property
    def train_pairs(self) -> list[dict[str, Any]]:
        """The training pairs, in the order their patches were generated."""
        return self._pairs("train")

    @property
    def test_pairs(self) -> list[dict[str, Any]]:
        """The test pairs (no patch of theirs is in the training data)."""
        return self._pairs("test")

    def statistics(self, stream: str) -> StreamStatistics:
        """Dataset statistics of ``'source'`` or ``'target'`` (training images only)."""
        return StreamStatistics.from_json(self.data["statistics"][stream])

    def normalization(self) -> Any:
        """The normalisation object the patches were made with."""
        return _normalization(self.data["patches"]["normalization"], self)

    def patch_filter(self) -> Any:
        """The patch filter the patches were made with."""
        return _filter(self.data["patches"]["filter"])

    def training_path(self) -> Path:
        """The training data file, beside the manifest."""
        base = self.path.parent if self.path is not None else Path.cwd()
        return base / self.data["patches"]["save_file"]

    def raw_data(self) -> RawData:
        """The training pairs as :class:`RawData`, opened lazily from their paths."""
        ld = self.data["loader"]
        pairs = self.train_pairs
        xs = [_open_entry(p["source"], ld["axes"], ld["options"]) for p in pairs]
        ys = [_open_entry(p["target"], ld["axes"], ld["options"]) for p in pairs]
        spec = self.data["patches"].get("mask")
        return _raw_data(xs, ys, _masks(xs, ys, ld["axes"], spec, ld["options"]))


def _mask_spec(
    mask: Any, label: str | None, values: Sequence[int] | None, axes: str | None
) -> dict[str, Any] | None:
    """The JSON record of the pixel-mask options (``None``: no masks)."""
    if mask is None and label is None:
        return None
    if mask is not None:
        many = isinstance(mask, list | tuple)
        if not all(isinstance(m, str | os.PathLike) for m in (mask if many else [mask])):
            raise InputError("dataset masks must be given as paths or URIs (they are recorded)")
        mask = [_abs(m) for m in mask] if many else _abs(mask)
    vals = None if values is None else [int(v) for v in values]
    return {"source": mask, "label": label, "values": vals, "axes": axes}


def _abs(p: Any) -> str:
    return str(p) if "://" in str(p) else os.path.abspath(p)


def _masks(
    xs: list[LazyImage],
    ys: list[LazyImage],
    axes: str | None,
    spec: dict[str, Any] | None,
    options: dict[str, Any],
) -> list[Any] | None:
    if spec is None:
        return None
    return open_masks(
        xs,
        ys,
        axes,
        mask=spec["source"],
        mask_label=spec["label"],
        mask_values=spec["values"],
        mask_axes=spec["axes"],
        **options,
    )


def _normalization(
    spec: dict[str, Any] | None,
    m: Manifest | None = None,
    stats: tuple[StreamStatistics, StreamStatistics] | None = None,
) -> Any:
    if spec is None:
        return None
    mode = spec.get("mode")
    if mode == "dataset":
        if stats is None:
            assert m is not None
            stats = (m.statistics("source"), m.statistics("target"))
        return dataset_normalization(stats[0], stats[1], spec["pmin"], spec["pmax"])
    if mode == "percentile":
        relu = bool(spec.get("relu_last", False))
        if spec.get("percentiles") is not None:
            return PercentileNormalization(tuple(spec["percentiles"]), relu)
        return PercentileNormalization(
            sample_percentiles(tuple(spec["pmin"]), tuple(spec["pmax"])),
            relu,
        )
    raise InputError(f"normalization mode {mode!r}: use 'percentile', 'dataset' or None")


def _filter(spec: dict[str, Any] | None) -> Any:
    if spec is None:
        return None
    if spec.get("kind") != "no_background_patches":
        raise InputError(f"patch filter {spec!r}: only 'no_background_patches' is recorded")
    return no_background_patches(spec["threshold"], spec["percentile"])


def _norm_spec(normalization: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if normalization is None or normalization == "none":
        return None
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise InputError(
                f"normalization={normalization!r}: use 'percentile' (csbdeep, per image), "
                "'dataset' (dataset percentiles) or None"
            )
        return dict(NORMALIZATIONS[normalization])
    mode = normalization.get("mode")
    if mode not in NORMALIZATIONS:
        raise InputError(f"normalization mode {mode!r}: use 'percentile' or 'dataset'")
    return {**NORMALIZATIONS[mode], **normalization}


def training_digest(X: Any, Y: Any, axes: str, rows: int = 256) -> str:
    """SHA-256 of training data content: shapes, dtypes, axes and the bytes of ``X`` and ``Y``.

    Independent of the file format (``.npz`` timestamps, Zarr chunking); reads ``rows`` patches
    at a time from numpy, dask or zarr arrays.
    """
    h = hashlib.sha256(f"caredask-training/1\0{axes}\0".encode())
    for arr in (X, Y):
        h.update(f"{tuple(arr.shape)}\0{np.dtype(arr.dtype).str}\0".encode())
        for i in range(0, int(arr.shape[0]), rows):
            h.update(np.ascontiguousarray(np.asarray(arr[i : i + rows])).tobytes())
    return h.hexdigest()


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
    try:
        json.dumps(options)
    except TypeError as e:
        raise InputError(
            f"loader options {sorted(options)} must be JSON-serialisable to be recorded in the "
            f"manifest ({e}); pass numbers, strings and lists"
        ) from None
    norm_spec = _norm_spec(normalization)
    filt_spec = DEFAULT_FILTER if patch_filter == "default" else patch_filter
    if isinstance(filt_spec, str):
        raise InputError(f"patch_filter={patch_filter!r}: use 'default', a dict or None")
    _filter(filt_spec)
    split_seed = seed if split_seed is None else split_seed
    ps = tuple(int(p) for p in patch_size)
    src_units = expand_sources(source, pattern, recursive)
    tgt_units = expand_sources(target, pattern, recursive)
    ipath = Path(index_path) if index_path is not None else out / "index.json"
    screening = Screening(patch_size=ps if patch_axes is None else None)
    index = build_index(
        [u.path for u in src_units + tgt_units],
        axes,
        index_path=ipath,
        screening=screening,
        pattern=pattern,
        recursive=recursive,
        **options,
    )
    pairs, excluded = _pairs(_keyed(src_units, index), _keyed(tgt_units, index), pair_by)
    if not pairs:
        reasons = "; ".join(f"{e['key']}: {e['reason']}" for e in excluded[:5])
        raise InputError(f"no usable source/target pair in {source} and {target} ({reasons})")
    labels = _group_labels(pairs, group_regex)
    train, test = split_groups(labels, test_fraction, split_seed)
    opts = index.params["options"]
    xs = [_open_entry(_entry(pairs[i][1]), axes, opts) for i in train]
    ys = [_open_entry(_entry(pairs[i][2]), axes, opts) for i in train]
    src_st, tgt_st = dataset_statistics(
        [[x.data for x in xs], [y.data for y in ys]],
        [[x.axes for x in xs], [y.axes for y in ys]],
        percentiles,
    )
    norm = _normalization(norm_spec, stats=(src_st, tgt_st))
    mask_spec = _mask_spec(mask, mask_label, mask_values, mask_axes)
    masks = _masks(xs, ys, axes, mask_spec, opts)
    from ..sampling.create import generate_training_data

    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    X, Y, axes_out = generate_training_data(
        _raw_data(xs, ys, masks),
        ps,
        n_patches_per_image,
        seed=seed,
        patch_axes=patch_axes,
        save_file=out / save_file,
        patch_filter=_filter(filt_spec),
        normalization=norm,
        shuffle=shuffle,
        overwrite=overwrite,
        verbose=verbose,
        on_empty=on_empty,
        summary=done,
    )
    pv = (
        write_preview(X, Y, axes_out, out / "preview.png", n=preview, seed=seed)
        if preview
        else None
    )
    data = {
        "schema": MANIFEST_SCHEMA,
        "caredask_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "name": name or out.name,
        "index": os.path.relpath(ipath, out),
        "loader": {"axes": axes, "options": opts, "pattern": pattern, "recursive": recursive},
        "inputs": {
            "pair_by": pair_by,
            "image_axes": pairs[0][1].axes,
            "pairs": [{"key": k, "source": _entry(s), "target": _entry(t)} for k, s, t in pairs],
            "excluded": excluded,
        },
        "split": {
            "unit": "image",
            "seed": split_seed,
            "test_fraction": test_fraction,
            "group_regex": group_regex,
            "train": [pairs[i][0] for i in train],
            "test": [pairs[i][0] for i in test],
        },
        "statistics": {
            "computed_on": "train",
            "images": len(train),
            "source": src_st.to_json(),
            "target": tgt_st.to_json(),
        },
        "patches": {
            "patch_size": list(ps),
            "n_patches_per_image": int(n_patches_per_image),
            "patch_axes": patch_axes,
            "seed": seed,
            "shuffle": shuffle,
            "filter": filt_spec,
            "mask": mask_spec,
            "normalization": norm_spec,
            "save_file": save_file,
            "axes": axes_out,
            "n_patches": int(X.shape[0]),
            "on_empty": on_empty,
            "skipped": done["skipped"],
            "content_sha256": training_digest(X, Y, axes_out),
        },
        "preview": None if pv is None else pv.name,
    }
    data["dataset_id"] = _dataset_id(data)
    manifest = Manifest(data)
    manifest.save(out / "manifest.json")
    return DatasetResult(manifest, X, Y, axes_out, index, pv)


def _dataset_id(data: dict[str, Any]) -> str:
    ids = [(p["source"]["id"], p["target"]["id"]) for p in data["inputs"]["pairs"]]
    core = {"ids": ids, "split": data["split"], "patches": data["patches"]}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


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
    from ..sampling.create import generate_training_data

    X, Y, axes = generate_training_data(
        m.raw_data(),
        pp["patch_size"],
        pp["n_patches_per_image"],
        seed=pp["seed"],
        patch_axes=pp["patch_axes"],
        save_file=dest,
        patch_filter=m.patch_filter(),
        normalization=m.normalization(),
        shuffle=pp["shuffle"],
        overwrite=overwrite,
        verbose=verbose,
        on_empty=pp.get("on_empty", "raise"),
    )
    if verify and training_digest(X, Y, axes) != pp["content_sha256"]:
        raise InputError(
            f"rebuilt training data in {dest} differ from the manifest's (content sha256); the "
            f"inputs or caredask ({__version__} vs {m.data['caredask_version']}) changed"
        )
    return X, Y, axes
