"""The examples run end to end, as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_flame_example(tmp_path):
    out = tmp_path / "flame"
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "flame_example.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bit-identical" in res.stdout
    assert (out / "dataset" / "manifest.json").exists()
    assert (out / "dataset" / "preview.png").exists()
