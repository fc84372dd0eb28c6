"""Transforms: everything that maps image pairs to image pairs, csbdeep's protocol first.

=========================  ===============================================================
module                     what lives there
=========================  ===============================================================
:mod:`.protocol`           :class:`Transform`, :class:`SourcedItem`, rng-free marks, labels
:mod:`.reshape`            :func:`permute_axes`, :func:`crop_images`, :func:`broadcast_target`
:mod:`.augment`            :func:`flip_xy`, :func:`rotate_xy`, :func:`split_channels`
:mod:`.frames`             frame accumulation: :func:`accumulate_frames`, :func:`sum_frames`
:mod:`.distortions`        :func:`anisotropic_distortions` (csbdeep's), built from the kernels
:mod:`.psf`                tiled PSF convolution (numpy kernels and their dask wrapper)
:mod:`.noise`              csbdeep's and seeded, chunking-independent noise
:mod:`.subsample`          sub-/re-sampling along one axis, csbdeep's subsample factor rule
:mod:`.tiles`              the global tile grid and chunkings made of whole tiles
=========================  ===============================================================
"""

from __future__ import annotations

from .augment import flip_xy, rotate_xy, split_channels
from .distortions import anisotropic_distortions
from .frames import accumulate_frames, accumulate_image, sum_frames
from .protocol import (
    SourcedItem,
    Transform,
    is_rng_free,
    item_sources,
    label_outputs,
    mark_rng_free,
    transform_labels,
)
from .reshape import broadcast_target, crop_images, permute_axes

__all__ = [
    "SourcedItem",
    "Transform",
    "accumulate_frames",
    "accumulate_image",
    "anisotropic_distortions",
    "broadcast_target",
    "crop_images",
    "flip_xy",
    "is_rng_free",
    "item_sources",
    "label_outputs",
    "mark_rng_free",
    "permute_axes",
    "rotate_xy",
    "split_channels",
    "sum_frames",
    "transform_labels",
]
