"""Fuzz of axes / shape / patch-size handling: every accepted combination runs, every refused
one raises a CaredaskError with a message (never a numpy IndexError or a bare ValueError)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import caredask as cc
from caredask.errors import CaredaskError, InputError

AXES = st.text(alphabet="STCZYXQyx", min_size=1, max_size=5)


@st.composite
def problems(draw: st.DrawFn) -> tuple[str, tuple[int, ...], tuple[int, ...], int]:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    axes = draw(st.one_of(AXES, st.permutations("CZYX").map("".join).map(lambda a: a[-ndim:])))
    if draw(st.booleans()):  # plausible: one entry per axis, within the image
        patch = tuple(draw(st.integers(1, n)) for n in shape)
        if "C" in axes[-ndim:] and len(axes) >= ndim:
            c = axes[-ndim:].index("C")
            patch = (*patch[:c], shape[c], *patch[c + 1 :])
    else:
        n_ps = draw(st.sampled_from([ndim, len(axes), max(ndim - 1, 1), ndim + 1]))
        patch = tuple(draw(st.lists(st.integers(-1, 7), min_size=n_ps, max_size=n_ps)))
    k = draw(st.sampled_from([1, 2, 2, 0]))
    return axes, shape, patch, k


def _run(axes: str, shape: tuple[int, ...], patch: tuple[int, ...], k: int) -> None:
    rs = np.random.RandomState(0)
    x = rs.randint(0, 100, shape).astype(np.uint16)
    raw = cc.RawData.from_arrays([x], [x + 1], axes)
    X, Y, out_axes = cc.create_patches(raw, patch, k, patch_filter=None, verbose=False)
    # accepted: k patches of the requested size, with the axes returned
    assert X.shape == Y.shape and X.shape[0] == k and len(out_axes) == X.ndim
    assert int(np.prod(X.shape[1:])) == int(np.prod(patch))  # a channel axis may be added


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_combination_runs_or_is_refused_by_name(
    problem: tuple[str, tuple[int, ...], tuple[int, ...], int],
) -> None:
    try:
        _run(*problem)
    except CaredaskError as e:
        assert str(e).strip(), f"{type(e).__name__} without a message for {problem}"


def test_patch_larger_than_image_names_the_axis() -> None:
    raw = cc.RawData.from_arrays([np.ones((8, 20))], [np.ones((8, 20))], "YX")
    with pytest.raises(InputError, match=r"along axis Y \(16 > 8\); use patches between 1"):
        cc.create_patches(raw, (16, 4), 2, verbose=False, patch_filter=None)
    with pytest.raises(InputError, match=r"along axis Y \(0 is not positive\), X \(32 > 20\)"):
        cc.create_patches(raw, (0, 32), 2, verbose=False, patch_filter=None)
