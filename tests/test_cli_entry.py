"""The installed ``caredask`` command, run as a user runs it: a subprocess, exit codes, stderr.

User mistakes and data problems must give one ``caredask: error: ...`` line in the command
line's spelling (``--axes``, not ``axes=``), exit 2 and no traceback.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from caredask.cli.main import build_parser
from caredask.dataset.synthetic import write_tiff_pairs

CLI = Path(sys.executable).with_name("caredask")
PATCH = ["--patch-size", "4", "16", "16", "-k", "5"]


def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    assert CLI.exists(), f"{CLI}: the caredask entry point is not installed (pip install -e .)"
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def assert_user_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, exactly one error line (the last one), CLI spelling."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("caredask: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    assert "axes=" not in errors[0] and "overwrite=True" not in errors[0], errors[0]
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("entry")
    write_tiff_pairs(base / "data", 2, (10, 48, 40), seed=3)
    tifffile.imwrite(
        base / "plain.tif", np.arange(10 * 48 * 40, dtype=np.uint16).reshape(10, 48, 40)
    )
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_and_python_m() -> None:
    from caredask import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"caredask {__version__}"
    m = subprocess.run(
        [sys.executable, "-m", "caredask", "--version"], capture_output=True, text=True
    )
    assert m.returncode == 0 and m.stdout.strip() == f"caredask {__version__}"


def test_help_lists_every_command_with_examples() -> None:
    top = run("--help")
    assert top.returncode == 0
    for cmd in ("patches", "inspect", "index", "dataset", "preview", "demo"):
        assert cmd in top.stdout
        h = run(cmd, "--help")
        assert h.returncode == 0 and "examples:" in h.stdout, cmd
        assert h.stdout.count("\n  caredask ") >= 2, cmd
    assert ":class:" not in top.stdout and "``" not in top.stdout  # plain words, no markup


def test_every_option_has_help_and_shows_its_default() -> None:
    ap = build_parser()
    subs = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in subs.choices.items():
        text = p.format_help()
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"caredask {name} {action.option_strings or action.dest}: no help"
            if action.default not in (None, False) and action.option_strings:
                shown = (
                    " ".join(map(str, action.default))
                    if isinstance(action.default, list | tuple)
                    else str(action.default)
                )
                assert f"(default: {shown})" in " ".join(text.split()), (name, action.dest)


def test_patches_summary_and_axes_from_metadata(data: Path, tmp_path: Path) -> None:
    """BASEPATH without --axes reads ImageJ metadata (ZYX) and equals csbdeep."""
    cd = pytest.importorskip("csbdeep.data")
    out = tmp_path / "t.npz"
    r = run("patches", str(data / "data"), *PATCH, "--seed", "7", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    for needle in (
        "2 images -> 10 patches",
        "patches/s",
        "size on disk",
        "value ranges: X [",
        "provenance: none in .npz",
    ):
        assert needle in r.stdout, (needle, r.stdout)
    np.random.seed(7)
    X, Y, axes = cd.create_patches(
        cd.RawData.from_folder(data / "data", ["low"], "GT", axes="ZYX"),
        (4, 16, 16),
        5,
        verbose=False,
    )
    f = np.load(out)
    assert np.array_equal(f["X"], X) and np.array_equal(f["Y"], Y) and str(f["axes"]) == axes
    lo, hi = (float(v) for v in r.stdout.split("value ranges: X [")[1].split("]")[0].split(","))
    assert np.isclose(lo, X.min(), rtol=1e-3) and np.isclose(hi, X.max(), rtol=1e-3)
    z = tmp_path / "t.zarr"
    r = run("patches", str(data / "data"), *PATCH, "-o", str(z), "-q")
    assert r.returncode == 0 and f"provenance: {z / 'zarr.json'}" in r.stdout, r.stdout


def test_axes_errors_use_cli_spelling(data: Path, tmp_path: Path) -> None:
    plain = str(data / "plain.tif")
    out = str(tmp_path / "x.npz")
    # no metadata, no --axes: shape and a suggestion, in every command
    assert_user_error(run("inspect", plain), "(10, 48, 40)", "--axes ZYX")
    assert_user_error(
        run("patches", "--source", plain, "--target", plain, *PATCH, "-o", out),
        "(10, 48, 40)",
        "--axes ZYX",
    )
    # too many letters: never silently shortened (csbdeep's right alignment), on any input
    assert_user_error(
        run("patches", str(data / "data"), "--axes", "ZYXC", *PATCH, "-o", out),
        "'ZYXC' have 4 letters",
        "--axes ZYX",
    )
    assert_user_error(run("inspect", plain, "--axes", "CZYX"), "4 letters")
    # with --axes, a file without metadata works, and an explicit CZYX is used, not ignored
    assert run("inspect", plain, "--axes", "ZYX").returncode == 0
    import zarr

    for name in ("s.zarr", "t.zarr"):
        g = zarr.open_group(tmp_path / name, mode="w")
        g.create_array("0", data=np.arange(2 * 4 * 16 * 16, dtype=np.uint16).reshape(2, 4, 16, 16))
    src = ["--source", str(tmp_path / "s.zarr"), "--target", str(tmp_path / "t.zarr")]
    assert_user_error(
        run(
            "patches", *src, "--patch-size", "2", "2", "8", "8", "-k", "2", "--no-filter", "-o", out
        ),
        "--axes CZYX",
    )
    r = run(
        "patches",
        *src,
        "--axes",
        "CZYX",
        "--patch-size",
        "2",
        "2",
        "8",
        "8",
        "-k",
        "2",
        "--no-filter",
        "-o",
        out,
        "-q",
    )
    assert r.returncode == 0 and "axes SCZYX" in r.stdout, r.stderr


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--scheduler", "thread"], ["--scheduler thread", "did you mean threads"]),
        (["--scheduler", "tcp://host:port"], ["not a dask scheduler"]),
        (["--scheduler", "tcp://host:99999"], ["99999 is not in 1..65535"]),
        (["--scheduler", "ftp://host:8786"], ["not a dask scheduler"]),
        (["--workers", "0"], ["--workers 0"]),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], ["drop --workers"]),
        (["--workers", "2", "--scheduler", "synchronous"], ["synchronous"]),
        (["--scheduler", "threads", "--scheduler-file", "s.json"], ["give only one"]),
        (["--timeout", "0"], ["--timeout 0"]),
        (["--memory", "lots"], ["--memory lots is not a positive size"]),
    ],
)
def test_scheduler_values_checked_up_front(data: Path, tmp_path: Path, extra, needles) -> None:
    r = run("patches", str(data / "data"), *PATCH, "-o", str(tmp_path / "x.npz"), *extra)
    assert_user_error(r, *needles)
    assert "connecting" not in r.stderr and not (tmp_path / "x.npz").exists()


def test_unreachable_scheduler_and_missing_file_fail_with_one_line(
    data: Path, tmp_path: Path
) -> None:
    addr = f"tcp://127.0.0.1:{free_port()}"
    base = ["patches", str(data / "data"), *PATCH, "-o", str(tmp_path / "x.npz")]
    r = run(*base, "--scheduler", addr, "--timeout", "1")
    assert f"connecting to the dask scheduler at {addr}" in r.stderr
    assert_user_error(r, "no dask scheduler answered", addr, "within 1 s", "--timeout")
    r = run(*base, "--scheduler-file", str(tmp_path / "none.json"), "--timeout", "0.5")
    assert_user_error(r, "--scheduler-file", "dask scheduler --scheduler-file")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert_user_error(run(*base, "--scheduler-file", str(bad)), "not a dask scheduler file")


def test_cluster_runs_give_identical_output(data: Path, tmp_path: Path) -> None:
    """--scheduler ADDRESS, --scheduler-file and --workers equal the threaded result."""
    from distributed import LocalCluster

    ref = tmp_path / "ref.npz"
    assert run("patches", str(data / "data"), *PATCH, "-o", str(ref), "-q").returncode == 0
    expected = np.load(ref)
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        sfile = tmp_path / "scheduler.json"
        sfile.write_text(json.dumps({"address": cluster.scheduler_address}))
        for i, how in enumerate(
            (["--scheduler", cluster.scheduler_address], ["--scheduler-file", str(sfile)])
        ):
            out = tmp_path / f"c{i}.npz"
            r = run("patches", str(data / "data"), *PATCH, "-o", str(out), "-q", *how)
            assert r.returncode == 0, r.stderr
            assert f"connecting to the dask scheduler at {cluster.scheduler_address}" in r.stderr
            got = np.load(out)
            assert np.array_equal(got["X"], expected["X"]) and np.array_equal(
                got["Y"], expected["Y"]
            )
    out = tmp_path / "w.npz"
    r = run("patches", str(data / "data"), *PATCH, "-o", str(out), "-q", "--workers", "2")
    assert r.returncode == 0 and "LocalCluster of 2 worker(s)" in r.stderr, r.stderr
    assert np.array_equal(np.load(out)["X"], expected["X"])


def test_inspect_reports_every_path_and_exact_stats(data: Path, tmp_path: Path) -> None:
    good = data / "data" / "low" / "img_000.tif"
    r = run(
        "inspect",
        str(tmp_path / "missing.tif"),
        str(good),
        "--stats",
        "--stats-percentiles",
        "1",
        "50",
        "99.9",
    )
    assert_user_error(r, "missing.tif")
    assert "img_000.tif" in r.stdout and "on disk: " in r.stdout and "chunks: " in r.stdout
    a = tifffile.imread(good)
    p1, p50, p999 = np.percentile(a, [1, 50, 99.9])
    stats = r.stdout.split("stats:")[1]
    assert f"min {a.min()}," in stats and f"max {a.max()}" in stats
    assert f"p1 {float(p1):.6g}, p50 {float(p50):.6g}, p99.9 {float(p999):.6g}" in stats
    assert run("inspect", str(good)).returncode == 0


def test_error_is_the_last_thing_on_screen(data: Path, tmp_path: Path) -> None:
    """With the progress bar on, an error mid-run comes after the closed bar, not inside it."""
    r = subprocess.run(
        [
            str(CLI),
            "patches",
            str(data / "data"),
            "--axes",
            "ZYXC",
            *PATCH,
            "-o",
            str(tmp_path / "x.npz"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stdout
    last = r.stdout.rstrip("\n").split("\n")[-1]
    assert last.startswith("caredask: error:") and "\r" not in last, repr(r.stdout[-300:])


def test_ctrl_c_one_line_exit_130(tmp_path: Path, sigint_deliverable: None) -> None:
    write_tiff_pairs(tmp_path / "d", 3, (32, 256, 256), seed=1)
    out = tmp_path / "x.zarr"
    p = subprocess.Popen(
        [
            str(CLI),
            "patches",
            str(tmp_path / "d"),
            "--patch-size",
            "8",
            "32",
            "32",
            "-k",
            "400",
            "-o",
            str(out),
            "--scheduler",
            "synchronous",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    assert "raw images x" in p.stdout.readline()  # planning done, extraction under way
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"caredask: interrupted: {out} not written")
    assert not out.exists() and not (tmp_path / "x.zarr.partial").exists()
    assert stderr.strip().endswith("; partial files removed")


def test_help_examples_are_valid_command_lines() -> None:
    """Every example of every --help parses with the real parser (options exist, values fit)."""
    import shlex

    ap = build_parser()
    subs = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    n = 0
    for p in [ap, *subs.choices.values()]:
        text = (p.epilog or "").replace("\\\n", " ")
        for line in text.splitlines():
            if line.strip().startswith("caredask "):
                ap.parse_args(shlex.split(line)[1:])
                n += 1
    assert n >= 2 * len(subs.choices)
