"""Real progress of a patch job: chunk tasks finished per phase, and images done.

The units are the chunk tasks of the three passes (statistics, mask, extraction) as the
scheduler runs them, counted where they run: a dask local-scheduler callback for the threaded,
process and synchronous schedulers, and a scheduler plugin polled every second for
``distributed``.  A tqdm bar is drawn on a terminal; otherwise a plain line is printed every
``interval`` seconds.  The callback also carries cancellation: once :meth:`Progress.cancel` is
called, local computations stop at their next task.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

from dask._task_spec import DataNode
from dask.callbacks import Callback
from dask.utils import key_split
from distributed.diagnostics.plugin import SchedulerPlugin

from ..masks.background import MASK_TASK
from ..masks.skip import DILATE_TASK
from ..statistics.percentile import STATS_TASK
from .extract import CUT_TASK, WRITE_TASK
from .schedule import distributed_client

__all__ = ["PHASE_OF", "Cancelled", "LocalCounter", "Monitor", "Progress", "TaskCounter"]

PHASE_OF = {
    STATS_TASK: "statistics",
    MASK_TASK: "mask",
    DILATE_TASK: "mask",
    CUT_TASK: "extract",
    WRITE_TASK: "extract",
}
"""Key prefix of each counted task -> its phase."""

PHASES = ("statistics", "mask", "extract")


class Cancelled(RuntimeError):
    """The job was cancelled (interrupted, or another part of it failed)."""


def count_phases(keys: Iterable[Any]) -> Counter[str]:
    """Number of counted tasks per phase among ``keys``."""
    out: Counter[str] = Counter()
    for k in keys:
        phase = PHASE_OF.get(key_split(k))
        if phase is not None:
            out[phase] += 1
    return out


class Progress:
    """Thread-safe counters of a job, rendered every few seconds.

    Parameters
    ----------
    n_images : int
        Images in the job (those already done when resuming are counted by :meth:`image_done`).
    estimate : int
        Up-front estimate of the chunk tasks of the whole job (the bar's total until more are
        seen).
    enabled : bool
        Draw a bar / print lines; counting happens either way.
    file : file object
        Where to draw (default ``sys.stderr``).
    interval : float, optional
        Seconds between plain lines when ``file`` is not a terminal (default 10).
    on_update : callable, optional
        Called with :meth:`snapshot` on every render (for tests and other front ends).
    """

    def __init__(
        self,
        n_images: int,
        estimate: int = 0,
        *,
        enabled: bool = True,
        file: IO[str] | None = None,
        interval: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.n_images = int(n_images)
        self.estimate = int(estimate)
        self.total: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.images = 0
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.on_update = on_update
        self.file = file if file is not None else sys.stderr
        self.tty = enabled and bool(getattr(self.file, "isatty", lambda: False)())
        self.enabled = enabled
        self.interval = (0.5 if self.tty else 10.0) if interval is None else float(interval)
        self.start = time.perf_counter()
        self._last = 0.0
        self._bar: Any = None
        self._line = ""
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=max(self.estimate, 1), unit="chunk", file=self.file)

    def add(self, counts: Mapping[str, int]) -> None:
        """Tasks of the given phases were submitted."""
        with self.lock:
            self.total.update(counts)
        self.render()

    def advance(self, counts: Mapping[str, int]) -> None:
        """Tasks of the given phases finished."""
        with self.lock:
            self.done.update(counts)
        self.render()

    def image_done(self, n: int = 1) -> None:
        """``n`` more images are completely written."""
        with self.lock:
            self.images += n
        self.render(force=True)

    def snapshot(self) -> dict[str, Any]:
        """Counters now: ``{phase: (done, total)}``, images, elapsed seconds."""
        with self.lock:
            out: dict[str, Any] = {p: (self.done[p], self.total[p]) for p in PHASES}
            out["images"] = (self.images, self.n_images)
            out["elapsed"] = time.perf_counter() - self.start
        return out

    def describe(self, snap: dict[str, Any]) -> str:
        """One line: ``statistics 12/40 · mask 3/20 · extract 0/0 chunks · images 0/2``."""
        parts = [f"{p} {snap[p][0]}/{snap[p][1]}" for p in PHASES]
        return " · ".join(parts) + f" chunks · images {snap['images'][0]}/{snap['images'][1]}"

    def render(self, force: bool = False) -> None:
        """Draw now if the interval has passed (or ``force``)."""
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        snap = self.snapshot()
        if self.on_update is not None:
            self.on_update(snap)
        if not self.enabled:
            return
        done = sum(snap[p][0] for p in PHASES)
        total = max(self.estimate, sum(snap[p][1] for p in PHASES), done, 1)
        if self._bar is not None:
            self._bar.total = total
            self._bar.n = done
            self._bar.set_postfix_str(self.describe(snap), refresh=False)
            self._bar.refresh()
        else:
            line = f"{100.0 * done / total:5.1f}% {self.describe(snap)}"
            if line != self._line:  # a plain line only when something moved
                self._line = line
                print(f"caredask: {line} ({snap['elapsed']:.0f} s)", file=self.file, flush=True)

    def cancel(self) -> None:
        """Ask running local computations to stop at their next task."""
        self.cancelled.set()

    def close(self) -> None:
        """Final render; the bar is closed so later messages start on a clean line."""
        if self._bar is not None:
            self.render(force=True)
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self.render(force=True)


class LocalCounter(Callback):
    """dask local-scheduler callback feeding a :class:`Progress` (and cancelling on request)."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def _start(self, dsk: Any) -> None:
        # Only tasks: persisted results of earlier passes appear as data and never run.
        tasks = (k for k, v in dsk.items() if not isinstance(v, DataNode))
        self.progress.add(count_phases(tasks))

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        if self.progress.cancelled.is_set():
            raise Cancelled("caredask job cancelled")

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
        phase = PHASE_OF.get(key_split(key))
        if phase is not None:
            self.progress.advance({phase: 1})


class TaskCounter(SchedulerPlugin):
    """Scheduler plugin of ``distributed`` counting submitted and finished tasks per phase."""

    name = "caredask-progress"

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.done: Counter[str] = Counter()

    def update_graph(self, scheduler: Any, *, tasks: Any = (), **kwargs: Any) -> None:
        self.total.update(count_phases(tasks or ()))

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "processing" and finish == "memory":
            phase = PHASE_OF.get(key_split(key))
            if phase is not None:
                self.done[phase] += 1


def _read_counts(dask_scheduler: Any) -> tuple[dict[str, int], dict[str, int]]:
    plugin = dask_scheduler.plugins.get(TaskCounter.name)
    if plugin is None:
        return {}, {}
    return dict(plugin.total), dict(plugin.done)


class Monitor:
    """Counts the job's tasks on whichever scheduler runs them; a context manager."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.client = distributed_client()
        self._local = LocalCounter(progress)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base: tuple[Counter[str], Counter[str]] = (Counter(), Counter())

    def __enter__(self) -> Monitor:
        if self.client is not None:
            self._start_plugin()
        return self

    @property
    def callback(self) -> tuple[Any, ...]:
        """The local-scheduler callback tuple (pass it to each computation)."""
        return self._local._callback

    @contextlib.contextmanager
    def global_fallback(self) -> Iterator[None]:
        """Register the callback globally (custom schedulers that take no callbacks)."""
        with self._local:
            yield

    def _start_plugin(self) -> None:
        try:
            self.client.register_plugin(TaskCounter(), name=TaskCounter.name)
            total, done = self.client.run_on_scheduler(_read_counts)
        except Exception as e:  # the scheduler may lack caredask: images-only progress
            print(f"caredask: no task progress from the scheduler ({e})", file=sys.stderr)
            return
        self._base = (Counter(total), Counter(done))
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            self.sync()

    def sync(self) -> None:
        """Copy the scheduler plugin's counters into the progress (distributed only)."""
        if self._thread is None:
            return
        try:
            total, done = self.client.run_on_scheduler(_read_counts)
        except Exception:  # client closing: keep the last counts
            return
        t = Counter(total)
        t.subtract(self._base[0])
        d = Counter(done)
        d.subtract(self._base[1])
        with self.progress.lock:
            self.progress.total = Counter({p: t[p] for p in PHASES})
            self.progress.done = Counter({p: d[p] for p in PHASES})
        self.progress.render()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self.sync()
