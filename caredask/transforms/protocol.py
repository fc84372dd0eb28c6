"""csbdeep's transform protocol: :class:`Transform`, items that know their files, output labels.

A :class:`Transform` maps a generator of ``(x, y, axes, mask)`` tuples to another generator;
``size`` is the number of outputs per input.  A generator may be marked free of random draws
(:func:`mark_rng_free`, which lets the pipeline batch) and may label its outputs
(:func:`label_outputs`, combined by :func:`transform_labels`).
"""

from __future__ import annotations

import itertools
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "Item",
    "SourcedItem",
    "Transform",
    "is_rng_free",
    "item_sources",
    "label_outputs",
    "mark_rng_free",
    "transform_labels",
]

Item = tuple[Any, Any, str, Any]
Gen = Callable[[Iterator[Item]], Iterator[Item]]


class Transform(namedtuple("Transform", ("name", "generator", "size"))):
    """A named generator transform with ``size`` outputs per input (csbdeep's protocol)."""

    __slots__ = ()

    @staticmethod
    def identity() -> Transform:
        """The transform that yields its inputs unchanged."""

        def _gen(inputs: Iterator[Item]) -> Iterator[Item]:
            yield from inputs

        return Transform("Identity", mark_rng_free(_gen), 1)


class SourcedItem(tuple):
    """An ``(x, y, axes, mask)`` item that also says which files ``x`` and ``y`` come from.

    It unpacks and indexes like the plain 4-tuple of csbdeep's protocol; the loaders' RawData
    constructors yield it so that a transform's error can name the files (``sources``).
    """

    sources: tuple[str, str]

    def __new__(cls, item: Sequence[Any], sources: tuple[str, str] = ("", "")) -> SourcedItem:
        self = super().__new__(cls, item)
        self.sources = sources
        return self


def item_sources(item: Any, i: int) -> tuple[str, str]:
    """``(source, target)`` names of an item: its files if known, else ``image {i}``."""
    sources = getattr(item, "sources", ("", ""))
    fallback = f"image {i}"
    return (sources[0] or fallback, sources[1] or sources[0] or fallback)


def mark_rng_free(f: Gen) -> Gen:
    """Declare that a generator function draws no random numbers (lets the pipeline batch)."""
    f._caredask_rng_free = True  # type: ignore[attr-defined]
    return f


def is_rng_free(f: Any) -> bool:
    """Whether ``f`` was declared free of random draws by :func:`mark_rng_free`."""
    return bool(getattr(f, "_caredask_rng_free", False))


def label_outputs(gen: Gen, labels: Sequence[str]) -> Gen:
    """Attach one label per output to a transform's generator (see :func:`transform_labels`)."""
    gen._caredask_labels = tuple(labels)  # type: ignore[attr-defined]
    return gen


def transform_labels(transforms: Sequence[Transform]) -> list[str]:
    """Labels of the ``prod(size)`` outputs per input image, in csbdeep's output order.

    The outputs of a transform list come in nested order (the last transform varies
    fastest).  A label joins the non-empty labels of each transform with ``','``; transforms
    without labels contribute their output index when their ``size`` exceeds 1.

    Examples
    --------
    >>> from caredask.transforms import flip_xy, split_channels
    >>> transform_labels([flip_xy(("", "X")), split_channels(2)])
    ['c0', 'c1', 'flipX,c0', 'flipX,c1']
    """
    per = []
    for t in transforms:
        labels = getattr(t.generator, "_caredask_labels", None)
        if labels is None:
            labels = [str(i) for i in range(t.size)] if t.size > 1 else [""]
        per.append(list(labels))
    return [",".join(p for p in combo if p) for combo in itertools.product(*per)]
