"""caredask: csbdeep's exact CARE training data, on any input format, at any scale.

``import caredask`` touches no random state; the csbdeep-compatible names (``create_patches``
and friends) are loaded on first use from :mod:`caredask.csbdeep`, whose import - like
``import csbdeep.data`` - draws two numbers from numpy's global random state.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .errors import (
    AxesError,
    CaredaskError,
    EmptyRegionError,
    FormatError,
    InputError,
    MissingDependencyError,
    SourceNotFoundError,
    UsageError,
)
from .loaders import LazyImage, open_images
from .masks.filters import BackgroundFilter
from .rawdata import RawData
from .statistics.percentile import percentile
from .transforms import (
    Transform,
    accumulate_frames,
    accumulate_image,
    anisotropic_distortions,
    broadcast_target,
    crop_images,
    flip_xy,
    permute_axes,
    rotate_xy,
    split_channels,
    sum_frames,
    transform_labels,
)
from .writers.store import TrainingStore

_COMPAT = {
    "create_patches",
    "create_patches_reduced_target",
    "generate_training_data",
    "no_background_patches",
    "norm_percentiles",
    "sample_percentiles",
    "normalize_mi_ma",
    "save_training_data",
    "load_training_data",
}

__all__ = [
    "AxesError",
    "accumulate_frames",
    "accumulate_image",
    "anisotropic_distortions",
    "flip_xy",
    "rotate_xy",
    "split_channels",
    "sum_frames",
    "transform_labels",
    "BackgroundFilter",
    "CaredaskError",
    "EmptyRegionError",
    "FormatError",
    "InputError",
    "LazyImage",
    "MissingDependencyError",
    "RawData",
    "SourceNotFoundError",
    "Transform",
    "TrainingStore",
    "UsageError",
    "__version__",
    "broadcast_target",
    "create_patches",
    "create_patches_reduced_target",
    "crop_images",
    "generate_training_data",
    "load_training_data",
    "no_background_patches",
    "norm_percentiles",
    "normalize_mi_ma",
    "open_images",
    "percentile",
    "permute_axes",
    "preview",
    "sample_percentiles",
    "save_training_data",
]


def __getattr__(name: str) -> Any:
    if name == "dataset":
        import importlib

        return importlib.import_module(".dataset", __name__)
    if name == "preview":
        from .visual.sampled import preview

        return preview
    if name in _COMPAT:
        if name == "generate_training_data":
            from .sampling.create import generate_training_data

            return generate_training_data
        from . import csbdeep

        return getattr(csbdeep, name)
    raise AttributeError(f"module 'caredask' has no attribute {name!r}")
