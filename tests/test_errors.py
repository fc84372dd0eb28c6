"""The error family: command-line usage errors and a missing optional reader, as Python sees
them (the builtin they also are) and as the command line prints them (one line, exit 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

from caredask.cli.main import main
from caredask.cli.mask_opts import mask_kwargs
from caredask.cli.preview_cmd import check_preview_option
from caredask.errors import CaredaskError, MissingDependencyError, UsageError
from caredask.loaders import open_images


def test_usage_errors_are_value_errors(tmp_path: Path) -> None:
    args = argparse.Namespace(mask=None, mask_label=None, mask_values=[1], mask_axes=None)
    with pytest.raises(UsageError, match=r"--mask-values/--mask-axes need --mask or --mask-label"):
        mask_kwargs(args)
    with pytest.raises(ValueError, match=r"--mask-values"):
        mask_kwargs(args)
    args = argparse.Namespace(preview=str(tmp_path / "p.png"), overwrite=False)
    with pytest.raises(UsageError, match=r"--preview needs a \.zarr --output"):
        check_preview_option(args, tmp_path / "out.npz")
    (tmp_path / "p.png").write_bytes(b"png")
    with pytest.raises(UsageError, match=r"p\.png exists; pass --overwrite"):
        check_preview_option(args, tmp_path / "out.zarr")
    assert issubclass(UsageError, CaredaskError) and issubclass(UsageError, ValueError)


@pytest.fixture
def no_pylibczirw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import pylibCZIrw`` fail as it does when the package is not installed."""
    monkeypatch.setitem(sys.modules, "pylibCZIrw", None)
    monkeypatch.setitem(sys.modules, "pylibCZIrw.czi", None)


def _czi(tmp_path: Path) -> Path:
    path = tmp_path / "scan.czi"
    path.write_bytes(b"not read: the reader is missing")
    return path


def test_missing_czi_reader_is_an_import_error(tmp_path: Path, no_pylibczirw: None) -> None:
    path = _czi(tmp_path)
    install = r"`pip install caredask\[czi\]`"
    with pytest.raises(MissingDependencyError, match=rf"scan\.czi: .*pylibCZIrw.*{install}"):
        open_images(path, axes="SYX")
    with pytest.raises(ImportError, match=r"needs pylibCZIrw, which is not installed"):
        open_images(path, axes="SYX")


def test_missing_czi_reader_on_the_command_line(
    tmp_path: Path, no_pylibczirw: None, capsys: Any
) -> None:
    path = _czi(tmp_path)
    assert main(["inspect", str(path), "--axes", "SYX"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("caredask: error: ") and "pip install caredask[czi]" in err[0]
    assert "Traceback" not in "".join(err)
