"""csbdeep's ``create_patches_reduced_target``: targets reduced to size 1 along some axes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..axes import axes_check_and_normalize, axes_dict
from ..errors import AxesError, InputError
from ..transforms import Transform, broadcast_target
from ..writers.npz import save_training_data
from .create import create_patches
from .items import compose_transforms

__all__ = ["create_patches_reduced_target"]


def _fill_none_sizes(
    raw_data: Any,
    patch_size: Sequence[int | None],
    reduction_axes: str,
    transforms: list[Transform],
    patch_axes: str | None,
) -> tuple[int, ...]:
    if all(s is not None for s in patch_size):
        return tuple(int(s) for s in patch_size)  # type: ignore[arg-type]
    apply, _, _ = compose_transforms(transforms, patch_axes)
    x, _, axes, _ = next(iter(apply(raw_data.generator())))
    out = []
    for i, (a, s) in enumerate(zip(axes, patch_size, strict=False)):
        if s is None and a not in reduction_axes:
            raise InputError(
                f"entry of patch_size is None for non reduction axis {a}; give a size for it"
            )
        out.append(int(x.shape[i]) if s is None else int(s))
    return tuple(out)


def create_patches_reduced_target(
    raw_data: Any,
    patch_size: Sequence[int | None],
    n_patches_per_image: int,
    reduction_axes: str,
    target_axes: str | None = None,
    **kwargs: Any,
) -> tuple[Any, Any, str]:
    """csbdeep's ``create_patches_reduced_target``: targets reduced to size 1 along axes.

    The target is broadcast to the source's shape (first transform), patches are created as
    with :func:`create_patches`, and ``Y`` keeps index 0 along every reduction axis.  csbdeep's
    ``TypeError`` for a reduction axis missing from the patches is an :class:`AxesError` here.
    """
    reduction_axes = axes_check_and_normalize(reduction_axes, disallowed="S")
    transforms = [broadcast_target(target_axes), *list(kwargs.get("transforms") or [])]
    kwargs["transforms"] = transforms
    save_file = kwargs.pop("save_file", None)
    patch_size = _fill_none_sizes(
        raw_data, patch_size, reduction_axes, transforms, kwargs.get("patch_axes")
    )
    X, Y, axes = create_patches(raw_data, patch_size, n_patches_per_image, **kwargs)
    ax = axes_dict(axes)
    for a in reduction_axes:
        if a not in axes:
            raise AxesError(f"reduction axis {a} not present in extracted patches (axes {axes})")
        if Y.shape[ax[a]] == 1:
            warnings.warn(
                f"extracted target patches already have dimensionality 1 along reduction axis {a}.",
                stacklevel=2,
            )
            continue
        t = np.take(Y, (1,), axis=ax[a])
        Y = np.take(Y, (0,), axis=ax[a])
        i = np.random.choice(Y.size, size=100)  # noqa: NPY002 (csbdeep uses the global state)
        if not np.all(t.flat[i] == Y.flat[i]):
            warnings.warn(f"extracted target patches vary along reduction axis {a}.", stacklevel=2)
    if save_file is not None:
        save_training_data(save_file, X, Y, axes)
    return X, Y, axes
