"""Drop-in replacement for ``csbdeep.data`` (and ``csbdeep.io``'s training-data functions).

Change ``from csbdeep.data import ...`` to ``from caredask.csbdeep import ...``: the same names,
signatures, defaults and numpy global random state use, and bit-identical results, computed
lazily and in chunks.  Like csbdeep, importing this module draws two numbers from numpy's
global random state (its default ``norm_percentiles()`` is built at import).
"""

from __future__ import annotations

from .axes import axes_check_and_normalize, axes_dict, move_image_axes
from .masks.filters import no_background_patches
from .rawdata import RawData
from .sampling.create import create_patches
from .sampling.reduced import create_patches_reduced_target
from .statistics.normalize import norm_percentiles, normalize_mi_ma, sample_percentiles
from .transforms import (
    Transform,
    anisotropic_distortions,
    broadcast_target,
    crop_images,
    permute_axes,
)
from .writers.load import load_training_data
from .writers.npz import save_training_data

# csbdeep builds its default ``norm_percentiles()`` at import, drawing two uniforms from numpy's
# global random state; so does this module, to leave that state exactly where csbdeep does.
norm_percentiles()

__all__ = [
    "RawData",
    "anisotropic_distortions",
    "Transform",
    "axes_check_and_normalize",
    "axes_dict",
    "broadcast_target",
    "create_patches",
    "create_patches_reduced_target",
    "crop_images",
    "load_training_data",
    "move_image_axes",
    "no_background_patches",
    "norm_percentiles",
    "normalize_mi_ma",
    "permute_axes",
    "sample_percentiles",
    "save_training_data",
]
