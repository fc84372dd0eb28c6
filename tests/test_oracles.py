"""The oracle helper fails instead of skipping wherever a missing oracle is a broken install."""

from __future__ import annotations

import pytest

from tests import oracles
from tests.oracles import oracle

NOPE = ("caredask_no_such_oracle.data", "caredask-no-such-oracle")


def test_present_oracles_import() -> None:
    assert oracle("csbdeep.data", "csbdeep").__name__ == "csbdeep.data"


def test_missing_oracle_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(ModuleNotFoundError, match="caredask_no_such_oracle"):
        oracle(*NOPE)


def test_missing_oracle_fails_when_the_rest_of_the_extra_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(oracles, "test_extra_installed", lambda but="": True)
    with pytest.raises(ModuleNotFoundError):
        oracle(*NOPE)


def test_installed_but_broken_oracle_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(oracles, "test_extra_installed", lambda but="": False)
    monkeypatch.setattr(oracles, "_installed", lambda dist: True)
    with pytest.raises(ModuleNotFoundError):
        oracle(*NOPE)


def test_missing_oracle_skips_only_without_the_test_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(oracles, "test_extra_installed", lambda but="": False)
    with pytest.raises(pytest.skip.Exception, match="not installed: pip install"):
        oracle(*NOPE)
