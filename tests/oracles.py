"""Test-extra oracles (csbdeep, pylibCZIrw, ...): present, or the run fails.

``pytest.importorskip`` at module level turns ANY import problem of an oracle into skips, so a
broken csbdeep would leave CI green with the bit-exactness tests skipped.  :func:`oracle`
imports the module and skips only when the package is simply not installed *and* the test
extra was not installed either (a user running a few tests with a bare pytest).  It fails when
the environment variable ``CI`` is set, when the rest of the test extra is installed (so the
oracle is missing from an installation that should have it), and whenever the package is
installed but its import fails.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from types import ModuleType

import pytest
from packaging.requirements import Requirement

__all__ = ["oracle", "test_extra_installed"]


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_extra_installed(but: str = "") -> bool:
    """Whether every package of caredask's ``test`` extra (except ``but``) is installed."""
    try:
        requires = importlib.metadata.requires("caredask") or []
    except importlib.metadata.PackageNotFoundError:
        return False
    names = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and req.marker.evaluate({"extra": "test"}):
            if req.name != "caredask" and req.name.lower() != but.lower():
                names.append(req.name)
    return bool(names) and all(_installed(n) for n in names)


test_extra_installed.__test__ = False  # type: ignore[attr-defined]  # not a test function


def oracle(module: str, dist: str) -> ModuleType:
    """Import ``module`` of distribution ``dist``; skip only where a missing one is expected.

    Parameters
    ----------
    module : str
        What to import, e.g. ``'csbdeep.data'``.
    dist : str
        Its distribution name in the test extra, e.g. ``'csbdeep'``.
    """
    if os.environ.get("CI") or _installed(dist) or test_extra_installed(but=dist):
        return importlib.import_module(module)  # any failure here fails the run
    pytest.skip(
        f"{dist} (a test oracle of the 'test' extra) is not installed: "
        "pip install -e '.[test]' to run these tests",
        allow_module_level=True,
    )
    raise AssertionError("unreachable")  # pragma: no cover
