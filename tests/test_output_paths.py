"""check_output_path: one rule for .npz and .zarr outputs, checked before any work."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from caredask.errors import CaredaskError, InputError
from caredask.writers import paths as paths_mod
from caredask.writers.npz import save_training_data
from caredask.writers.paths import check_output_path
from caredask.writers.zarr_store import save_training_data_zarr

X = np.zeros((2, 1, 4, 4), np.float32)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("d.npz", "d.npz"),
        ("d.data", "d.npz"),
        ("sub/dir/d.npz", "sub/dir/d.npz"),
        ("s.zarr", "s.zarr"),
    ],
)
def test_new_output_is_accepted(tmp_path: Path, name: str, written: str) -> None:
    assert check_output_path(tmp_path / name, overwrite=False) == tmp_path / written
    assert not (tmp_path / "sub").exists()  # a check creates nothing


@pytest.mark.parametrize("kind", ["npz", "zarr"])
@pytest.mark.parametrize(("cli", "hint"), [(False, "overwrite=True"), (True, "--overwrite")])
def test_existing_output_refused_unless_overwrite(
    tmp_path: Path, kind: str, cli: bool, hint: str
) -> None:
    out = tmp_path / f"d.{kind}"
    if kind == "npz":
        save_training_data(out, X, X, "SCYX")
    else:
        save_training_data_zarr(out, X, X, "SCYX")
    with pytest.raises(InputError, match=rf"d\.{kind} exists; pass {hint} to replace it"):
        check_output_path(out, overwrite=False, cli=cli)
    assert check_output_path(out, overwrite=True, cli=cli) == out


def test_npz_suffix_replaced_before_the_existence_check(tmp_path: Path) -> None:
    save_training_data(tmp_path / "d.npz", X, X, "SCYX")
    with pytest.raises(InputError, match=r"d\.npz exists"):
        check_output_path(tmp_path / "d.data", overwrite=False)


def test_overwrite_never_replaces_foreign_data(tmp_path: Path) -> None:
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(InputError, match=r"folder\.npz is a directory, not a \.npz file"):
        check_output_path(tmp_path / "folder.npz", overwrite=True)
    (tmp_path / "mine.zarr").mkdir()
    (tmp_path / "mine.zarr" / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match=r"refusing to overwrite .*mine\.zarr.*not a caredask"):
        check_output_path(tmp_path / "mine.zarr", overwrite=True)
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(InputError, match=r"refusing to overwrite .*file\.zarr"):
        check_output_path(tmp_path / "file.zarr", overwrite=True)
    (tmp_path / "empty.zarr").mkdir()
    assert check_output_path(tmp_path / "empty.zarr", overwrite=True) == tmp_path / "empty.zarr"
    (tmp_path / "target.npz").write_bytes(b"")
    (tmp_path / "link.npz").symlink_to(tmp_path / "target.npz")
    with pytest.raises(InputError, match=r"link\.npz is a symbolic link"):
        check_output_path(tmp_path / "link.npz", overwrite=True)


@pytest.mark.parametrize("name", ["out.npz", "out.zarr", "deeper/out.npz"])
def test_parent_is_a_file(tmp_path: Path, name: str) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match=r"afile is a file, not a folder"):
        check_output_path(tmp_path / "afile" / name, overwrite=True)


def test_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:  # root may write anywhere: simulate what access(2) says for others
        ro.chmod(0o555)
    else:
        real = os.access
        monkeypatch.setattr(
            paths_mod.os, "access", lambda p, m: False if Path(p) == ro else real(p, m)
        )
    try:
        for name in ("d.npz", "d.zarr", "new/d.npz"):
            with pytest.raises(InputError, match=r"the folder .*ro is not writable"):
                check_output_path(ro / name, overwrite=False, cli=True)
    finally:
        ro.chmod(0o755)


def test_foreign_partial_and_bad_names(tmp_path: Path) -> None:
    (tmp_path / "s.zarr.partial").mkdir()
    (tmp_path / "s.zarr.partial" / "x").write_text("x")
    with pytest.raises(InputError, match=r"s\.zarr\.partial exists and is not an interrupted"):
        check_output_path(tmp_path / "s.zarr", overwrite=False)
    with pytest.raises(InputError, match=r"--output .*d\.tif: use a file name ending in \.npz"):
        check_output_path(tmp_path / "d.tif", overwrite=False, cli=True)
    with pytest.raises(InputError, match=r"outputs must be local paths"):
        check_output_path("s3://bucket/d.zarr", overwrite=False)
    with pytest.raises(InputError, match=r"must be a str or pathlib.Path, got int"):
        check_output_path(3, overwrite=False)  # type: ignore[arg-type]
    assert issubclass(InputError, CaredaskError)
