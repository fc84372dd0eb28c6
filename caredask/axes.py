"""Axes strings: validation, lookup and moving image axes (numpy and dask arrays alike)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import AxesError

__all__ = ["AXES", "axes_check_and_normalize", "axes_dict", "move_image_axes", "suggest_axes"]

AXES = "STCZYX"


def axes_check_and_normalize(
    axes: str, length: int | None = None, disallowed: str | None = None
) -> str:
    """Upper-case an axes string and check it.

    Parameters
    ----------
    axes : str
        Axes letters, e.g. ``'zyx'``; each one of ``S, T, C, Z, Y, X`` at most once.
    length : int, optional
        Required number of axes.
    disallowed : str, optional
        Letters that must not occur.

    Returns
    -------
    str
        The upper-cased axes.

    Raises
    ------
    AxesError
        An unknown or repeated letter, a wrong length or a disallowed letter.
    """
    if axes is None:
        raise AxesError("axes must be given, e.g. axes='ZYX'; got None")
    axes = str(axes).upper()
    for a in axes:
        if a not in AXES:
            raise AxesError(f"invalid axis {a!r} in axes {axes!r}: use only letters of {AXES!r}")
        if axes.count(a) != 1:
            raise AxesError(f"axis {a!r} occurs more than once in axes {axes!r}: name each once")
        if disallowed is not None and a in disallowed.upper():
            raise AxesError(f"axis {a!r} is not allowed here (axes {axes!r}); remove it")
    if length is not None and len(axes) != length:
        raise AxesError(
            f"axes ({axes}) must be of length {length}: give one letter per array dimension"
        )
    return axes


def suggest_axes(shape: tuple[int, ...]) -> str:
    """Likely axes of an image of this shape, for error messages (a guess, never applied).

    The last two dimensions are ``YX``; the first other dimension of at most 4 is taken as
    channels ``C``; the remaining ones are, from the right, ``Z``, ``T`` and ``S``:
    ``(40, 512, 512)`` -> ``'ZYX'``, ``(2, 512, 512)`` -> ``'CYX'``,
    ``(5, 3, 40, 512, 512)`` -> ``'TCZYX'``.
    """
    if len(shape) <= 2:
        return "YX"[2 - len(shape) :]
    rest = list(shape[:-2])
    c = next((i for i, n in enumerate(rest) if n <= 4), None)
    others = iter("ZTS"[: len(rest) - (c is not None)][::-1])
    letters = ["C" if i == c else next(others, "?") for i in range(len(rest))]
    return "".join(letters) + "YX" if "?" not in letters else "ZYX"


def axes_dict(axes: str) -> dict[str, int | None]:
    """Map each letter of ``STCZYX`` to its position in ``axes`` (or ``None``)."""
    axes = axes_check_and_normalize(axes)
    return {a: (axes.index(a) if a in axes else None) for a in AXES}


def move_image_axes(x: Any, fr: str, to: str, adjust_singletons: bool = False) -> Any:
    """Reorder the axes of ``x`` (numpy or dask) from ``fr`` to ``to``.

    With ``adjust_singletons``, axes of ``fr`` missing from ``to`` are dropped if they have size
    1, and axes of ``to`` missing from ``fr`` are added as trailing singletons before moving.
    """
    fr = axes_check_and_normalize(fr, length=x.ndim)
    to = axes_check_and_normalize(to)
    fr_initial = fr
    if adjust_singletons:
        for i, a in reversed(list(enumerate(fr))):
            if a not in to and x.shape[i] == 1:
                x = x[(slice(None),) * i + (0,)]
                fr = fr.replace(a, "")
        x = x[(...,) + (None,) * len([a for a in to if a not in fr])]
        fr += "".join(a for a in to if a not in fr)
    if set(fr) != set(to):
        raise AxesError(
            f"image with shape {x.shape} and axes {fr_initial} is not compatible with target "
            f"axes {to}: the axes must name the same dimensions"
        )
    if fr == to:
        return x
    return np.moveaxis(x, [fr.index(a) for a in fr], [to.index(a) for a in fr])
