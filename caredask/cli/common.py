"""Helpers every ``caredask`` subcommand shares: help layout, option words, errors, summaries.

Subcommand modules import from here (and from :mod:`caredask.cli.cluster`), never from
:mod:`caredask.cli.main`, which only assembles the parser and runs the handler.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "AXES_HELP",
    "HelpFormatter",
    "add_axes_option",
    "add_no_zarrs_option",
    "add_normalization_options",
    "add_quiet_option",
    "add_reader_option",
    "close_progress_bars",
    "cli_spelling",
    "disk_size",
    "examples",
    "interrupted_note",
    "mtime_of",
    "one",
    "one_line",
    "print_error",
    "print_summary",
    "reader_options",
    "zarrs_switch",
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


def add_reader_option(p: Any) -> None:
    """``--reader bioio``: read every file through bioio's plugins (also TIFF and CZI)."""
    p.add_argument(
        "--reader",
        choices=("bioio",),
        default=None,
        help="read every file through bioio's plugins, also TIFF/CZI (pip install "
        "caredask[bioio]); default: native readers, bioio for vendor formats (.dv, .nd2, ...)",
    )


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """Loader options from ``--reader`` (none when it is not given)."""
    reader = getattr(args, "reader", None)
    return {} if reader is None else {"reader": reader}


_NO_ZARRS = "read Zarr with zarr-python's codec pipeline even if zarrs is installed"


def add_no_zarrs_option(parser: argparse.ArgumentParser, subparsers: Any) -> None:
    """``--no-zarrs`` on the main parser and on every subcommand (before or after its name).

    The subcommands store it under their own name, so that their default cannot undo the
    switch given before the command name.
    """
    parser.add_argument("--no-zarrs", action="store_true", help=_NO_ZARRS)
    for p in subparsers.choices.values():
        p.add_argument("--no-zarrs", dest="no_zarrs_here", action="store_true", help=_NO_ZARRS)


@contextlib.contextmanager
def zarrs_switch(args: argparse.Namespace) -> Iterator[None]:
    """Turn ``zarrs`` off while a command runs when ``--no-zarrs`` was given."""
    if getattr(args, "no_zarrs", False) or getattr(args, "no_zarrs_here", False):
        from ..loaders.codecs import use_zarrs

        with use_zarrs(False):
            yield
    else:
        yield


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


def one_line(message: str) -> str:
    """A message on one line (library messages sometimes hold newlines)."""
    return " ".join(message.split())


def print_error(message: str) -> None:
    """``caredask: error: ...`` last on screen, on one line, in the command line's spelling."""
    close_progress_bars()
    print(f"caredask: error: {one_line(cli_spelling(message))}", file=sys.stderr, flush=True)


def mtime_of(output: str | None) -> int | None:
    """Modification time (ns) of ``output``, ``None`` when there is none (or no output)."""
    if not output or not os.path.lexists(output):
        return None
    return os.lstat(output).st_mtime_ns


def interrupted_note(output: str | None, before: int | None) -> str:
    """What an interrupted run left at ``output`` (a file, store or folder), in one phrase.

    ``before`` is :func:`mtime_of` ``output`` when the run started. A finished output is only
    ever renamed into place whole, so ``output`` is either the one from before, the complete
    new one, or absent; what else is left (a ``.partial`` store to resume, temporary files) is
    named.
    """
    if not output:
        return "nothing was written"
    out = Path(output)
    now = mtime_of(output)
    if out.is_dir() and out.suffix != ".zarr":  # a dataset folder
        return f"what was already written under {out} stays there (remove it or pass --overwrite)"
    if before is None and now is None:
        what = f"{out} not written"
    elif now == before:
        what = f"{out} unchanged"
    else:
        what = f"{out} {'written' if now is not None else 'removed'}"
    partial = out.with_name(out.name + ".partial")
    temps = sorted(out.parent.glob(f".{glob.escape(out.name)}.*.tmp"))
    if os.path.lexists(partial):
        what += (
            f"; the interrupted store {partial} is kept: run the same command again to "
            "resume it (--restart to start over)"
        )
    if temps:
        what += f"; temporary files left for the next run to remove: {', '.join(map(str, temps))}"
    if not temps and not os.path.lexists(partial):
        what += "; partial files removed"
    return what


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
