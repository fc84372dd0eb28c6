"""Pure helpers of the command line: scheduler addresses, axes suggestions, CLI spelling."""

from __future__ import annotations

import pytest

from caredask.axes import suggest_axes
from caredask.cli.cluster import connect, parse_address
from caredask.cli.common import cli_spelling
from caredask.errors import InputError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("scheduler.cluster.local:8786", "tcp://scheduler.cluster.local:8786"),
        ("tls://[::1]:8786", "tls://[::1]:8786"),
        ("ws://host:8786/", "ws://host:8786"),
    ],
)
def test_parse_address(value: str, expected: str) -> None:
    assert parse_address(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("thread", "did you mean threads"),
        ("proceses", "did you mean processes"),
        ("tcp://host", "not a dask scheduler"),
        ("tcp://host:0", "not in 1..65535"),
        ("http://host:8786", "not a dask scheduler"),
        ("", "not a dask scheduler"),
    ],
)
def test_parse_address_rejects(value: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_address(value)


def test_connect_local_schedulers_set_dask_config() -> None:
    import dask

    with connect("processes", workers=3) as client:
        assert client is None
        assert dask.config.get("scheduler") == "processes"
        assert dask.config.get("num_workers") == 3
    with connect("sync") as client:
        assert client is None and dask.config.get("scheduler") == "synchronous"
    with pytest.raises(InputError, match="give only one"), connect("threads", "f.json"):
        pass


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((512, 512), "YX"),
        ((40, 512, 512), "ZYX"),
        ((2, 512, 512), "CYX"),
        ((2, 40, 512, 512), "CZYX"),
        ((40, 2, 512, 512), "ZCYX"),
        ((7, 40, 512, 512), "TZYX"),
        ((5, 3, 40, 512, 512), "TCZYX"),
    ],
)
def test_suggest_axes(shape: tuple[int, ...], axes: str) -> None:
    assert suggest_axes(shape) == axes


def test_cli_spelling() -> None:
    assert (
        cli_spelling("x.tif: pass axes=..., one letter per dimension, e.g. axes='ZYX'")
        == "x.tif: pass --axes AXES, one letter per dimension, e.g. --axes ZYX"
    )
    assert (
        cli_spelling("exists; pass overwrite=True (--overwrite) or")
        == "exists; pass --overwrite or"
    )
    assert cli_spelling("omit axes= to use the metadata's") == "omit --axes to use the metadata's"
    assert cli_spelling("or pass patch_filter=None") == "or pass --no-filter"
    assert cli_spelling("axes 'ZYX' of the image") == "axes 'ZYX' of the image"
