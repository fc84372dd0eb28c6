"""Hypothesis strategies shared by the tests: random dask chunkings of a given shape.

Every blockwise function is checked against its numpy twin on chunkings drawn from here:
``irregular_chunks`` cuts each axis at random places (dask's explicit ``chunks`` tuples),
``regular_chunks`` draws one chunk edge per axis (the ``chunks=`` option of the loaders).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import strategies as st

__all__ = ["irregular_chunks", "regular_chunks"]


@st.composite
def irregular_chunks(
    draw: st.DrawFn, shape: Sequence[int], max_cuts: int = 3
) -> tuple[tuple[int, ...], ...]:
    """Irregular chunks of ``shape``: each axis cut at up to ``max_cuts`` random places."""
    out = []
    for n in shape:
        cuts = draw(st.sets(st.integers(1, max(n - 1, 1)), max_size=max_cuts))
        edges = [0, *sorted(c for c in cuts if 0 < c < n), n]
        out.append(tuple(b - a for a, b in itertools.pairwise(edges)))
    return tuple(out)


@st.composite
def regular_chunks(draw: st.DrawFn, shape: Sequence[int], parts: int = 0) -> tuple[int, ...]:
    """One chunk edge per axis of ``shape``, from 1 (or ``n // parts``, at least 1) to ``n``."""
    return tuple(draw(st.integers(max(1, n // parts) if parts else 1, max(1, n))) for n in shape)
