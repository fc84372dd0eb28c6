"""`.npz` outputs and inputs under damage: lying headers, killed writers, stale temp files."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from caredask.errors import FormatError
from caredask.writers.load import load_training_data
from caredask.writers.npz import remove_stale_temps, save_training_data


def _npy_with_header(shape: tuple[int, ...], payload: bytes, descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + payload


@pytest.mark.parametrize("member", ["X", "Y"])
def test_npz_declaring_more_than_it_holds_is_refused_before_allocation(
    tmp_path: Path, member: str
) -> None:
    good = np.zeros((2, 1, 4, 4), np.float32)
    f = tmp_path / "lying.npz"
    with zipfile.ZipFile(f, "w") as zf:
        for key in ("X", "Y"):
            if key == member:  # 4 TiB declared, 64 bytes present
                zf.writestr(f"{key}.npy", _npy_with_header((1 << 20, 1 << 20), bytes(64)))
            else:
                buf = io.BytesIO()
                np.save(buf, good)
                zf.writestr(f"{key}.npy", buf.getvalue())
        buf = io.BytesIO()
        np.save(buf, np.asarray("SCYX"))
        zf.writestr("axes.npy", buf.getvalue())
    with pytest.raises(
        FormatError,
        match=rf"lying\.npz'?: member '{member}' declares shape \(1048576, 1048576\) of float32 "
        r"\(4398046511104 bytes\) but holds only 64 bytes",
    ):
        load_training_data(f)


def test_npz_truncated_member_refused(tmp_path: Path) -> None:
    X = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 1, 8, 8)
    good = io.BytesIO()
    np.save(good, X)
    f = tmp_path / "cut.npz"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("X.npy", good.getvalue()[:-10])
        zf.writestr("Y.npy", good.getvalue())
    with pytest.raises(FormatError, match=r"cut\.npz'?: member 'X' declares shape \(2, 1, 8, 8\)"):
        load_training_data(f, axes="SCYX")


def test_intact_npz_still_loads(tmp_path: Path) -> None:
    X = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    save_training_data(tmp_path / "d.npz", X, X + 1, "SCYX")
    (x, y), _, axes = load_training_data(tmp_path / "d.npz", channel_last=False)
    assert np.array_equal(x, X) and np.array_equal(y, X + 1) and axes == "SCYX"


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from caredask.writers.npz import save_training_data

    def slow_savez(fh, **kw):
        fh.write(b"PK\\x03\\x04 half a zip")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)

    np.savez = slow_savez
    save_training_data(sys.argv[1], np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), "SCYX")
    """
)


def _start_writer(out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc


def test_killed_write_leaves_a_temp_the_next_run_removes(tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    proc = _start_writer(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (tmp,) = tmp_path.glob(".d.npz.*.tmp")  # what the killed run left: no d.npz
    assert not out.exists()
    save_training_data(out, np.ones((2, 1, 2, 2)), np.ones((2, 1, 2, 2)), "SCYX")
    assert sorted(os.listdir(tmp_path)) == ["d.npz"]
    assert not tmp.exists()


def test_write_in_progress_and_other_outputs_are_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    proc = _start_writer(out)
    try:
        (live,) = tmp_path.glob(".d.npz.*.tmp")
        other = tmp_path / ".e.npz.somehost-1.abc.tmp"  # another output's temp file
        other.write_bytes(b"x")
        assert remove_stale_temps(out) == []
        save_training_data(out, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), "SCYX")
        assert live.exists() and other.exists() and out.exists()
    finally:
        proc.kill()
        proc.wait()


def test_temp_of_another_host_removed_only_when_old(tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    fresh = tmp_path / ".d.npz.otherhost-12.ab12.tmp"
    old = tmp_path / ".d.npz.otherhost-13.cd34.tmp"
    legacy = tmp_path / f".d.npz.{'0' * 32}.tmp"  # the name of earlier caredask versions
    for f in (fresh, old, legacy):
        f.write_bytes(b"x")
    long_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (long_ago, long_ago))
    os.utime(legacy, (long_ago, long_ago))
    assert remove_stale_temps(out) == sorted([legacy, old])
    assert fresh.exists()
