"""Where the command line's dask work runs: a local scheduler, a ``LocalCluster`` or a cluster.

Follows dask's own conventions:

* ``--scheduler threads|processes|synchronous``: a local dask scheduler in this process
  (``threads`` is dask's default);
* ``--scheduler tcp://host:port`` (or another dask comm address: ``tls://``, ``ucx://``,
  ``ws://``, ``wss://``; a bare ``host:port`` means ``tcp://``): an existing
  ``distributed`` scheduler;
* ``--scheduler-file FILE``: the JSON file ``dask scheduler --scheduler-file FILE`` (or
  ``dask-jobqueue``/``dask-mpi``) writes, holding the scheduler's address;
* ``--workers N``: start a ``LocalCluster`` of N worker processes on this machine (with
  ``--scheduler threads|processes``: the size of the local pool instead).

Every value is checked before anything is started or contacted, a ``connecting to ...`` line
goes to stderr while waiting, and a scheduler that does not answer within ``--timeout`` seconds
gives one :class:`~caredask.errors.InputError` naming the address and the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, SourceNotFoundError
from ..sampling.schedule import LOCAL_SCHEDULERS

__all__ = ["COMM_SCHEMES", "LOCAL_SCHEDULERS", "add_cluster_options", "connect", "parse_address"]

COMM_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
"""Address schemes of ``distributed``'s comm layer."""

DEFAULT_TIMEOUT = 10.0
_ADDRESS = re.compile(
    r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+)"
    r"(?::(?P<port>\d+))?/?$"
)
_HINT = (
    "use threads, processes, synchronous, a scheduler address such as tcp://host:8786, "
    "or --scheduler-file FILE"
)


def add_cluster_options(p: Any) -> Any:
    """Add ``--scheduler``, ``--scheduler-file``, ``--workers``, ``--timeout``; return the group."""
    g = p.add_argument_group("where to compute (dask)")
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="NAME|ADDRESS",
        help="threads (dask's default), processes, synchronous, or the address of a running "
        "dask scheduler, e.g. tcp://10.0.0.5:8786",
    )
    g.add_argument(
        "--scheduler-file",
        default=None,
        metavar="FILE",
        help="connect to the scheduler whose address is in FILE (written by "
        "'dask scheduler --scheduler-file FILE' or dask-jobqueue)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="start a LocalCluster of N worker processes on this machine (with --scheduler "
        "threads/processes: the number of threads/processes)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up when no scheduler answers within this time",
    )
    return g


def parse_address(value: str) -> str:
    """Check a dask scheduler address and return it with its scheme (``tcp://`` by default).

    Raises
    ------
    InputError
        Not a local scheduler name and not ``scheme://host:port`` with a known scheme and a
        port in 1..65535 (the message suggests the closest scheduler name).
    """
    m = _ADDRESS.match(value.strip())
    scheme = (m.group("scheme") if m else None) or "tcp"
    if m is None or scheme not in COMM_SCHEMES or (m.group("port") is None and scheme != "inproc"):
        close = difflib.get_close_matches(value.lower(), list(LOCAL_SCHEDULERS), n=1, cutoff=0.6)
        guess = f" (did you mean {close[0]}?)" if close else ""
        raise InputError(f"--scheduler {value}: not a dask scheduler{guess}; {_HINT}")
    port = m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InputError(f"--scheduler {value}: port {port} is not in 1..65535; {_HINT}")
    return f"{scheme}://{m.group('host')}" + (f":{port}" if port else "")


def _check_combination(
    scheduler: str | None,
    scheduler_file: str | None,
    workers: int | None,
    timeout: float,
    local: str | None,
) -> None:
    if scheduler is not None and scheduler_file is not None:
        raise InputError(
            f"--scheduler {scheduler} and --scheduler-file {scheduler_file} both name a "
            "scheduler; give only one"
        )
    if not timeout > 0:
        raise InputError(f"--timeout {timeout:g}: give a positive number of seconds")
    if workers is None:
        return
    if workers < 1:
        raise InputError(f"--workers {workers}: give a positive number of workers")
    if scheduler_file is not None or (scheduler is not None and local is None):
        raise InputError(
            f"--workers {workers} starts a LocalCluster, but the job goes to an existing "
            "cluster (--scheduler ADDRESS or --scheduler-file), which has its own workers; "
            "drop --workers"
        )
    if local == "synchronous":
        raise InputError(
            f"--workers {workers} does not fit --scheduler synchronous (one thread); "
            "drop one of them"
        )


def _address_from_file(path: Path, timeout: float) -> str:
    """The address in a dask scheduler file, waiting up to ``timeout`` for the file to appear."""
    deadline = time.monotonic() + timeout
    if not path.exists():
        print(f"caredask: waiting for the scheduler file {path}", file=sys.stderr)
    while not path.exists():
        if time.monotonic() > deadline:
            raise SourceNotFoundError(
                f"--scheduler-file {path}: no such file after {timeout:g} s; start the "
                f"scheduler with 'dask scheduler --scheduler-file {path}' (or check the path), "
                "or raise --timeout"
            )
        time.sleep(0.2)
    try:
        address = json.loads(path.read_text())["address"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"--scheduler-file {path}: not a dask scheduler file ({type(e).__name__}: {e}); "
            "it should be the JSON written by 'dask scheduler --scheduler-file FILE'"
        ) from None
    return parse_address(str(address))


def _client(address: str, timeout: float, origin: str) -> Any:
    from distributed import Client

    print(
        f"caredask: connecting to the dask scheduler at {address}{origin} "
        f"(timeout {timeout:g} s) ...",
        file=sys.stderr,
    )
    try:
        client = Client(address, timeout=timeout, set_as_default=True)
    except (OSError, TimeoutError) as e:
        raise InputError(
            f"no dask scheduler answered at {address}{origin} within {timeout:g} s ({e}); check "
            "that the scheduler runs and the host and port are right, or raise --timeout"
        ) from None
    n = len(client.scheduler_info().get("workers", {}))
    print(f"caredask: connected to {address}, {n} worker(s)", file=sys.stderr)
    return client


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Any]:
    """Run the enclosed dask computations where the command line says; yield the Client.

    Parameters
    ----------
    scheduler : str, optional
        A local scheduler name (``threads``, ``processes``, ``synchronous``) or the address of
        a running ``distributed`` scheduler; ``None`` keeps dask's default (threads).
    scheduler_file : str, optional
        A dask scheduler file holding the address.
    workers : int, optional
        Start a ``LocalCluster`` with this many workers (or, with a local scheduler name, the
        size of its pool).
    timeout : float
        Seconds to wait for a scheduler (and for ``scheduler_file`` to appear).

    Yields
    ------
    distributed.Client or None
        The client of a cluster, ``None`` for a local scheduler.

    Raises
    ------
    InputError
        An invalid value or combination (checked before anything starts), or no answer
        within ``timeout``.
    SourceNotFoundError
        ``scheduler_file`` did not appear within ``timeout``.
    """
    import dask

    local = LOCAL_SCHEDULERS.get((scheduler or "").lower())
    _check_combination(scheduler, scheduler_file, workers, timeout, local)
    address = None if scheduler is None or local else parse_address(scheduler)
    with contextlib.ExitStack() as stack:
        if local is not None or (scheduler is None and scheduler_file is None and not workers):
            config: dict[str, Any] = {} if local is None else {"scheduler": local}
            if workers:
                config["num_workers"] = workers
            stack.enter_context(dask.config.set(config))
            yield None
            return
        if address is None and scheduler_file is None:
            from distributed import LocalCluster

            from ..sampling.schedule import worker_environment

            print(f"caredask: starting a LocalCluster of {workers} worker(s)", file=sys.stderr)
            with worker_environment():
                cluster = stack.enter_context(
                    LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0")
                )
            address, origin = cluster.scheduler_address, " (LocalCluster)"
        elif scheduler_file is not None:
            address = _address_from_file(Path(scheduler_file), timeout)
            origin = f" (from {scheduler_file})"
        else:
            origin = ""
        assert address is not None
        client = stack.enter_context(_client(address, timeout, origin))
        yield client
