"""Pairing source and target images of an index, grouping pairs and splitting them by group.

Pairs are made by relative path (``pair_by='name'``) or listing order; a pair is excluded, with
its reason, when either side was rejected or the two differ in shape or axes.  Pairs are grouped
(equal ``group_regex`` match, shared content ids) and whole groups go to the training or the
test side (:func:`split_groups`, see :mod:`caredask.dataset.manifest`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..loaders.discover import natural_key
from .index import Index
from .records import ImageRecord
from .units import Unit

__all__ = ["Pair", "group_labels", "keyed_records", "pair_records", "record_entry", "split_groups"]

Pair = tuple[str, ImageRecord, ImageRecord]
"""``(key, source record, target record)``."""


def record_entry(rec: ImageRecord) -> dict[str, Any]:
    """What a manifest records of one image: id, place in its unit and the unit's identity."""
    keys = ("id", "path", "image", "name", "size", "mtime_ns", "sha256")
    return {k: getattr(rec, k) for k in keys}


def keyed_records(units: list[Unit], index: Index) -> dict[str, ImageRecord]:
    """The records of some units by key: the relative path (``rel#k`` for several images)."""
    out: dict[str, ImageRecord] = {}
    groups = index.by_unit()
    for u in units:
        recs = groups.get(u.path, [])
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


def pair_records(
    src: dict[str, ImageRecord], tgt: dict[str, ImageRecord], pair_by: str
) -> tuple[list[Pair], list[dict[str, Any]]]:
    """The usable pairs and the excluded keys with their reasons (see the module docstring)."""
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
    pairs: list[Pair] = []
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


def group_labels(pairs: list[Pair], group_regex: str | None) -> list[str]:
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
