"""Helpers every ``caredask`` subcommand shares: help layout, option words, errors, summaries.

Subcommand modules import from here (and from :mod:`caredask.cli.cluster`), never from
:mod:`caredask.cli.main`, which only assembles the parser and runs the handler.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "AXES_HELP",
    "HelpFormatter",
    "add_axes_option",
    "add_normalization_options",
    "add_quiet_option",
    "close_progress_bars",
    "cli_spelling",
    "disk_size",
    "examples",
    "interrupted_note",
    "one",
    "print_error",
    "print_summary",
]

AXES_HELP = (
    "axes of every image, one letter of STCZYX per dimension (e.g. ZYX, CYX, TZYX). Without "
    "--axes they come from each file's metadata (ImageJ/OME TIFF, OME-Zarr, Zarr "
    "dimension_names, CZI); a file without usable metadata is an error that shows its shape "
    "and suggests axes"
)

RANGE_LIMIT = 2 * 2**30
"""Largest output (bytes of X and Y) whose value ranges the summary reads back."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the description's and examples' line breaks; append ``(default: ...)`` to options.

    Defaults that say nothing (``None``, ``False``) are not shown.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        if isinstance(default, list | tuple):
            return f"{text} (default: {' '.join(str(d) for d in default)})"
        return f"{text} (default: %(default)s)"


def examples(*lines: str) -> str:
    """An ``examples:`` epilog for a subcommand's ``--help``."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_axes_option(p: Any) -> None:
    """``--axes``: the same rule in every command (see :data:`AXES_HELP`)."""
    p.add_argument("--axes", default=None, metavar="AXES", help=AXES_HELP)


def add_quiet_option(p: Any) -> None:
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar (the summary still prints)"
    )


def add_normalization_options(g: Any) -> None:
    """csbdeep's per-image percentile normalisation: ``--pmin``, ``--pmax``, ``--relu-last``."""
    g.add_argument(
        "--pmin",
        type=float,
        nargs=2,
        default=(1.0, 3.0),
        metavar=("LO", "HI"),
        help="low percentile of each patch's normalisation, drawn uniformly from [LO, HI]",
    )
    g.add_argument(
        "--pmax",
        type=float,
        nargs=2,
        default=(99.5, 99.9),
        metavar=("LO", "HI"),
        help="high percentile of each patch's normalisation, drawn uniformly from [LO, HI]",
    )
    g.add_argument(
        "--relu-last",
        action="store_true",
        help="clip negative values of the normalised target to 0 (csbdeep's relu_last)",
    )


# Python keyword spellings in messages of the API -> the command line's options.
_SPELLING = [
    (re.compile(r"\bpass overwrite=True \(--overwrite\)"), "pass --overwrite"),
    (re.compile(r"\boverwrite=True\b"), "--overwrite"),
    (re.compile(r"\bomit axes=(\.\.\.)?"), "omit --axes"),
    (re.compile(r"\baxes=\.\.\.(,?)"), r"--axes AXES\1"),
    (re.compile(r"\baxes=(['\"])([A-Za-z]+)\1"), r"--axes \2"),
    (re.compile(r"\baxes= explicitly"), "--axes explicitly"),
    (re.compile(r"\baxes=(?=[\s,;)]|$)"), "--axes"),
    (re.compile(r"\bpattern=\.\.\."), "--pattern PATTERN"),
    (re.compile(r"\bpattern=(['\"])([^'\"]*)\1"), r"--pattern '\2'"),
    (re.compile(r"\bn_patches_per_image=(\S+)"), r"-k \1"),
    (re.compile(r"\bpatch_size=(?=\()"), "--patch-size "),
    (re.compile(r"\bpatch_filter=None\b"), "--no-filter"),
    (re.compile(r"\bmemory budget (['\"])([^'\"]*)\1"), r"--memory \2"),
    (re.compile(r"\bnormalization=None\b"), "--no-normalization"),
]


def cli_spelling(message: str) -> str:
    """Rewrite the API's keyword spellings (``axes='ZYX'``) as options (``--axes ZYX``)."""
    for pattern, repl in _SPELLING:
        message = pattern.sub(repl, message)
    return message


def close_progress_bars() -> None:
    """Close every tqdm bar still on screen, so that what follows starts on a fresh line."""
    tqdm_mod = sys.modules.get("tqdm")
    if tqdm_mod is not None:
        for bar in list(getattr(tqdm_mod.tqdm, "_instances", ())):
            bar.close()
    sys.stdout.flush()


def print_error(message: str) -> None:
    """``caredask: error: ...`` as the last thing on screen, in the command line's spelling."""
    close_progress_bars()
    print(f"caredask: error: {cli_spelling(message)}", file=sys.stderr, flush=True)


def interrupted_note(output: str | None, existed: bool) -> str:
    """What an interrupted run left at ``output`` (a file, store or folder).

    ``existed`` says whether ``output`` was there before the run started.
    """
    if not output:
        return "nothing was written"
    out = Path(output)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        return (
            f"the unfinished store {partial} is kept; rerun the same command to resume it "
            "(--restart starts over)"
        )
    if existed:
        return f"{out} is still the one from before this run"
    if out.is_dir() and out.suffix != ".zarr":
        return f"what was already written under {out} stays there (remove it or pass --overwrite)"
    if out.exists():
        return f"{out} was completed before the interrupt"
    return f"{out} was not written and nothing partial was left behind"


def one(values: list[str]) -> str | list[str]:
    """A single path for one value, the list otherwise (as :func:`open_images` takes them)."""
    return values[0] if len(values) == 1 else values


def disk_size(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of a file, or of every file under a folder/store."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _ranges(X: Any, Y: Any) -> str:
    import numpy as np

    if not isinstance(X, np.ndarray):
        if X.nbytes + Y.nbytes > RANGE_LIMIT:
            return (
                f"not read back (output over {_size(RANGE_LIMIT)}; 'caredask inspect "
                "OUTPUT/X OUTPUT/Y --stats' gives them)"
            )
        import dask

        lo_x, hi_x, lo_y, hi_y = dask.compute(X.min(), X.max(), Y.min(), Y.max())
    else:
        lo_x, hi_x, lo_y, hi_y = X.min(), X.max(), Y.min(), Y.max()
    return f"X [{float(lo_x):.4g}, {float(hi_x):.4g}], Y [{float(lo_y):.4g}, {float(hi_y):.4g}]"


def print_summary(
    output: str | os.PathLike[str],
    X: Any,
    Y: Any,
    axes: str,
    n_images: int,
    seconds: float,
    provenance: str,
) -> None:
    """What a run made: images and patches, time, throughput, size on disk, value ranges."""
    n = int(X.shape[0]) if len(X.shape) else 0
    size = disk_size(output)
    rate = f"{n / seconds:.1f} patches/s, {n_images / seconds:.2f} images/s" if seconds else ""
    print(f"wrote {output}: X {tuple(X.shape)}, Y {tuple(Y.shape)}, axes {axes}")
    print(f"  {n_images} images -> {n} patches in {seconds:.1f} s ({rate})")
    print(f"  size on disk: {_size(size)}")
    print(f"  value ranges: {_ranges(X, Y)}")
    print(f"  provenance: {provenance}")
