"""Pairing of opened source and target images: by image name or by position.

Errors name the images without a partner (their source, else their name) and say how to fix.
"""

from __future__ import annotations

from ..errors import InputError
from .base import LazyImage

__all__ = ["image_where", "listing", "pair_by_name", "pair_by_position"]


def image_where(img: LazyImage) -> str:
    """Where an image comes from, for messages: its source, else its name."""
    return img.source or img.name


def listing(names: list[str], limit: int = 10) -> str:
    """At most ``limit`` names, comma-separated, with a count of the rest."""
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def pair_by_name(xs: list[LazyImage], ys: list[LazyImage]) -> list[tuple[LazyImage, LazyImage]]:
    """Each source with the target of the same image name; repeated or lonely names refused."""
    for side, images in (("source", xs), ("target", ys)):
        seen: dict[str, int] = {}
        for im in images:
            seen[im.name] = seen.get(im.name, 0) + 1
        repeated = sorted(n for n, c in seen.items() if c > 1)
        if repeated:
            raise InputError(
                f"the {side} images repeat the names {listing(repeated)}, so they cannot be "
                "paired by name; give each image once, or pair by position explicitly "
                "(pair_by='position', CLI --pair-by position)"
            )
    by_name = {y.name: y for y in ys}
    lonely_x = [image_where(x) for x in xs if x.name not in by_name]
    names_x = {x.name for x in xs}
    lonely_y = [image_where(y) for y in ys if y.name not in names_x]
    if lonely_x or lonely_y:
        parts = [f"no target for {listing(lonely_x)}"] if lonely_x else []
        parts += [f"no source for {listing(lonely_y)}"] if lonely_y else []
        raise InputError(
            "source and target images are paired by name and some have no partner: "
            + "; ".join(parts)
            + "; add the missing files, remove the extra ones, or pair by position explicitly "
            "(pair_by='position', CLI --pair-by position) if the names legitimately differ"
        )
    return [(x, by_name[x.name]) for x in xs]


def pair_by_position(xs: list[LazyImage], ys: list[LazyImage]) -> list[tuple[LazyImage, LazyImage]]:
    """The i-th source with the i-th target; different counts refused, naming the extra."""
    if len(xs) != len(ys):
        if len(xs) > len(ys):
            extra = f"no target for {listing([image_where(x) for x in xs[len(ys) :]])}"
        else:
            extra = f"no source for {listing([image_where(y) for y in ys[len(xs) :]])}"
        raise InputError(
            f"{len(xs)} source images but {len(ys)} target images (paired by position): "
            f"{extra}; give one target per source, in the same order"
        )
    return list(zip(xs, ys, strict=True))
