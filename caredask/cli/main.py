"""The ``caredask`` command line: assembles the subcommands and runs one of them.

Each subcommand lives in its own module with an ``add_parser(subparsers)`` function that sets
its handler (``set_defaults(handler=...)``); this module adds one line per subcommand and turns
errors into one ``caredask: error: ...`` line (exit 2) and Ctrl-C into one line (exit 130).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import CaredaskError
from . import convert_cmd, dataset_cmd, demo, inspect_cmd, patches_cmd, preview_cmd
from .common import (
    HelpFormatter,
    add_no_zarrs_option,
    close_progress_bars,
    interrupted_note,
    mtime_of,
    print_error,
    zarrs_switch,
)

__all__ = ["build_parser", "main"]

DESCRIPTION = f"""\
caredask {__version__}: CARE training data from microscopy image pairs, exactly as csbdeep
makes them, from TIFF, Zarr/OME-Zarr and CZI, lazily, on a laptop or a Dask cluster.

Axes: --axes names every dimension of every image (one letter of STCZYX each); without it
the axes come from the files' metadata, and a file without any is an error that shows its
shape and suggests axes. 'caredask COMMAND --help' shows each command's options and examples.
"""

EPILOG = """\
examples:
  caredask demo
  caredask patches data --axes ZYX --patch-size 16 64 64 -k 128 -o train.npz
  caredask inspect data/low
  caredask preview train.zarr -o sampled.png
"""


class _Parser(argparse.ArgumentParser):
    """argparse with caredask's error format: one line ``caredask: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"caredask: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``caredask`` command."""
    ap = _Parser(
        prog="caredask", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    ap.add_argument("--version", action="version", version=f"caredask {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    patches_cmd.add_parser(sub)
    inspect_cmd.add_parser(sub)
    dataset_cmd.add_parsers(sub)
    preview_cmd.add_parser(sub)
    demo.add_parser(sub)
    convert_cmd.add_parser(sub)
    add_no_zarrs_option(ap, sub)  # last: every subcommand takes it
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``caredask`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    output = getattr(args, "output", None)
    before = mtime_of(output)
    try:
        with zarrs_switch(args):
            return int(args.handler(args))
    except CaredaskError as e:
        print_error(str(e))
        return 2
    except OSError as e:  # the system refused (disk full, permissions, network share gone)
        print_error(str(e) or type(e).__name__)
        return 2
    except KeyboardInterrupt:
        close_progress_bars()
        note = interrupted_note(output, before)
        print(f"caredask: interrupted: {note}", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
