"""From csbdeep's random C-order ranks to patch centres, without materialising ``np.where``.

csbdeep enumerates eligible centres with ``np.where(mask[border])`` (C order) and draws ranks
into that list with a ``random.Random`` seeded from numpy.  Here the mask exists only as bits
packed per line; per-(line, block) counts locate each rank's line and block, and only those
line segments are unpacked.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial

import dask
import dask.array as da
import numpy as np

__all__ = ["choose_ranks", "locate_ranks", "ranks_to_centres_dense", "take_lines"]


def choose_ranks(seed: int, n_valid: int, k: int) -> list[int]:
    """csbdeep's draw: ``k`` ranks of ``range(n_valid)``, without replacement when possible."""
    r = random.Random(int(seed))
    if n_valid < k:
        return r.choices(range(n_valid), k=k)
    return r.sample(range(n_valid), k=k)


def ranks_to_centres_dense(
    ranks: Sequence[int], border_shape: Sequence[int], start: Sequence[int]
) -> np.ndarray:
    """Centres for an all-True mask: C-order ranks are plain flat indices of the border box."""
    idx = np.unravel_index(np.asarray(ranks, dtype=np.int64), tuple(border_shape))
    return np.stack(idx, axis=-1) + np.asarray(start, dtype=np.int64)


def _segment_tasks(
    ranks: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each rank: its flat (line, block) cell and its offset among that cell's True bits."""
    flat = counts.reshape(-1)
    cum = np.cumsum(flat)
    cell = np.searchsorted(cum, ranks, side="right")
    before = np.where(cell > 0, cum[np.maximum(cell - 1, 0)], 0)
    return cell, ranks - before, cum


def take_lines(block: np.ndarray, lines: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Kernel: copies of the given lines (leading-axis indices) of one packed block."""
    return [np.array(block[line], copy=True) for line in lines]


def _fetch_lines(
    packed: da.Array, cells: np.ndarray, lead_shape: tuple[int, ...], n_blocks: int
) -> dict[int, np.ndarray]:
    """The packed bits of each (line, last-axis block) cell: one task per packed block."""
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in packed.chunks[:-1]]
    wanted: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]] = {}
    for c in cells:
        line, b = divmod(int(c), n_blocks)
        idx = np.unravel_index(line, lead_shape) if lead_shape else ()
        blk = tuple(
            int(np.searchsorted(bd, i, side="right")) - 1 for bd, i in zip(bounds, idx, strict=True)
        )
        local = tuple(int(i - bd[j]) for i, bd, j in zip(idx, bounds, blk, strict=True))
        wanted.setdefault((*blk, b), []).append((int(c), local))
    blocks = packed.to_delayed(optimize_graph=False)
    tasks = [
        dask.delayed(partial(take_lines, lines=[loc for _, loc in cs]), pure=True)(blocks[key])
        for key, cs in wanted.items()
    ]
    out = {}
    for cs, got in zip(wanted.values(), dask.compute(*tasks), strict=True):
        for (c, _), line in zip(cs, got, strict=True):
            out[c] = line
    return out


def locate_ranks(
    ranks: Sequence[int],
    counts: np.ndarray,
    packed: da.Array,
    last_chunks: Sequence[int],
    start: Sequence[int],
) -> np.ndarray:
    """Coordinates (``(k, ndim)``, in rank order) of the given C-order ranks of True bits.

    Parameters
    ----------
    ranks : sequence of int
        0-based ranks into the C-ordered list of True elements of the (cropped) mask.
    counts : ndarray
        Per (line, last-axis block) counts, shape ``(*mask.shape[:-1], n_blocks)``.
    packed : dask.array.Array
        The mask packed along its last axis per block (ideally persisted).
    last_chunks : sequence of int
        The mask's chunk sizes along the last axis.
    start : sequence of int
        Offset of the mask inside the image (the border crop), added to the result.
    """
    ranks_arr = np.asarray(ranks, dtype=np.int64)
    lead_shape = counts.shape[:-1]
    n_blocks = counts.shape[-1]
    cell, offset, _ = _segment_tasks(ranks_arr, counts)
    x_starts = np.concatenate([[0], np.cumsum(last_chunks)])
    cells = np.unique(cell)
    lines = _fetch_lines(packed, cells, lead_shape, n_blocks)
    lookup = {}
    for c in cells:
        b = int(c) % n_blocks
        lookup[int(c)] = np.flatnonzero(np.unpackbits(lines[int(c)], count=int(last_chunks[b])))
    out = np.empty((len(ranks_arr), len(lead_shape) + 1), dtype=np.int64)
    for i, (c, o) in enumerate(zip(cell, offset, strict=True)):
        line, b = divmod(int(c), n_blocks)
        lead = np.unravel_index(line, lead_shape) if lead_shape else ()
        out[i, :-1] = lead
        out[i, -1] = x_starts[b] + lookup[int(c)][int(o)]
    return out + np.asarray(start, dtype=np.int64)
