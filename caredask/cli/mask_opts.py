"""``--mask``, ``--mask-label``, ``--mask-values`` and ``--mask-axes`` (patches and dataset)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UsageError

__all__ = ["add_mask_options", "mask_kwargs"]


def add_mask_options(p: argparse.ArgumentParser) -> None:
    """Add the pixel-mask options to a sub-command's parser."""
    g = p.add_argument_group("pixel masks (csbdeep's mask: patch centres only inside the mask)")
    g.add_argument(
        "--mask",
        nargs="+",
        default=None,
        metavar="PATH",
        help="mask images in any format (TIFF folder, Zarr arrays, OME-Zarr label image), "
        "paired with the sources by name, else in order; non-zero pixels are eligible",
    )
    g.add_argument(
        "--mask-label",
        default=None,
        metavar="NAME",
        help="use the NGFF label image labels/NAME of each OME-Zarr input (source, else target)",
    )
    g.add_argument(
        "--mask-values",
        type=int,
        nargs="+",
        default=None,
        metavar="LABEL",
        help="only these label values are eligible (default: any non-zero label)",
    )
    g.add_argument(
        "--mask-axes", default=None, metavar="AXES", help="axes of the masks (else from metadata)"
    )


def mask_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :meth:`caredask.RawData.from_sources` for the mask options."""
    mask = args.mask
    if mask is not None and len(mask) == 1:
        mask = mask[0]
    if mask is None and args.mask_label is None:
        if args.mask_values is not None or args.mask_axes is not None:
            raise UsageError("--mask-values/--mask-axes need --mask or --mask-label")
        return {}
    return {
        "mask": mask,
        "mask_label": args.mask_label,
        "mask_values": args.mask_values,
        "mask_axes": args.mask_axes,
    }
