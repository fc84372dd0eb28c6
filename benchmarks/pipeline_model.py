"""Discrete-event model of caredask's batch pipeline on W workers x T threads.

What is modelled (the structure of :mod:`caredask.sampling.pipeline` and ``schedule``):

* batches (here one image each) are admitted in order while the sum of their estimated costs
  fits the memory budget and fewer than ``cap`` (``schedule.max_batches``) run; at least one runs;
* each batch is a sequence of client calls (statistics compute, mask persist, counts compute,
  locate compute, extraction compute).  Before each call the client thread works for ``gap``
  seconds (graph building, rank location); client work of all batches is serialised (one
  Python process, the GIL).  A call then costs a round-trip latency ``rtt`` and runs its tasks;
  a blocking call ends when its last task ends, a non-blocking one (``persist`` on
  ``distributed``) ends at once and its tasks run on;
* tasks have their measured dependencies and durations; a task is ready when its dependencies
  are done; ready tasks run on the W*T threads in submission order; a central scheduler hands
  out tasks one at a time, ``sched`` seconds each (a serial resource).

Utilisation = busy thread-seconds (task durations) / (threads x modelled wall time).
Not modelled: data transfer between workers, locality, stragglers, memory pressure.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One client round trip of a batch: client work before it, then its task graph."""

    gap: float
    blocking: bool
    durations: list[float]  # per task
    deps: list[list[int]]  # indices into the batch's tasks (this call or earlier calls)
    offset: int = 0  # index of this call's first task in the batch


@dataclass
class Batch:
    cost: int
    calls: list[Call]

    @property
    def n_tasks(self) -> int:
        return sum(len(c.durations) for c in self.calls)


@dataclass
class Result:
    wall: float
    busy: float
    threads: int
    max_in_flight: int
    mean_in_flight: float
    client_busy: float
    sched_busy: float
    n_tasks: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def utilisation(self) -> float:
        return self.busy / (self.threads * self.wall) if self.wall else 0.0


class _Sim:
    def __init__(
        self, batches: list[Batch], threads: int, budget: int, cap: int, sched: float, rtt: float
    ) -> None:
        self.batches = batches
        self.flat = {id(b): [d for c in b.calls for d in c.durations] for b in batches}
        self.threads, self.budget, self.cap = threads, budget, cap
        self.sched, self.rtt = sched, rtt
        self.now = 0.0
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = 0
        self.free = threads
        self.ready: list[tuple[int, int, int]] = []  # (submit seq, batch, task)
        self.sched_free = 0.0
        self.client_free = 0.0
        self.client_busy = 0.0
        self.busy = 0.0
        self.next_batch = 0
        self.running: dict[int, int] = {}  # batch -> cost
        self.done_tasks: list[list[bool]] = [[False] * len(self.flat[id(b)]) for b in batches]
        self.waiting: list[dict[int, int]] = [{} for _ in batches]  # task -> unmet deps
        self.children: list[dict[int, list[int]]] = [{} for _ in batches]
        self.call_left: list[int] = [0] * len(batches)
        self.call_idx: list[int] = [0] * len(batches)
        self.inflight_area = 0.0
        self.last_t = 0.0
        self.max_in_flight = 0
        self.submit_seq = 0

    def push(self, t: float, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, data))

    def _account(self) -> None:
        self.inflight_area += len(self.running) * (self.now - self.last_t)
        self.last_t = self.now

    def admit(self) -> None:
        while self.next_batch < len(self.batches):
            b = self.batches[self.next_batch]
            used = sum(self.running.values())
            if self.running and (used + b.cost > self.budget or len(self.running) >= self.cap):
                return
            self._account()
            self.running[self.next_batch] = b.cost
            self.max_in_flight = max(self.max_in_flight, len(self.running))
            self.start_call(self.next_batch)
            self.next_batch += 1

    def start_call(self, bi: int) -> None:
        call = self.batches[bi].calls[self.call_idx[bi]]
        start = max(self.now, self.client_free)
        self.client_free = start + call.gap
        self.client_busy += call.gap
        self.push(self.client_free + self.rtt, "submit", bi)

    def submit(self, bi: int) -> None:
        call = self.batches[bi].calls[self.call_idx[bi]]
        self.call_left[bi] = len(call.durations)
        self.submit_seq += 1
        done = self.done_tasks[bi]
        for j, deps in enumerate(call.deps):
            t = call.offset + j
            unmet = [d for d in deps if not done[d]]
            for d in unmet:
                self.children[bi].setdefault(d, []).append(t)
            if unmet:
                self.waiting[bi][t] = len(unmet)
            else:
                heapq.heappush(self.ready, (self.submit_seq, bi, t))
        if not call.blocking or not call.durations:
            self.call_done(bi)
        self.dispatch()

    def call_done(self, bi: int) -> None:
        self.call_idx[bi] += 1
        if self.call_idx[bi] < len(self.batches[bi].calls):
            self.start_call(bi)
        else:
            self.push(self.now, "batch_done", bi)

    def _duration(self, bi: int, t: int) -> float:
        return self.flat[id(self.batches[bi])][t]

    def dispatch(self) -> None:
        while self.free and self.ready:
            _, bi, t = heapq.heappop(self.ready)
            start = max(self.now, self.sched_free)
            self.sched_free = start + self.sched
            d = self._duration(bi, t)
            self.busy += d
            self.free -= 1
            self.push(start + d, "task_done", (bi, t))

    def task_done(self, bi: int, t: int) -> None:
        self.free += 1
        self.done_tasks[bi][t] = True
        for c in self.children[bi].pop(t, []):
            self.waiting[bi][c] -= 1
            if self.waiting[bi][c] == 0:
                del self.waiting[bi][c]
                heapq.heappush(self.ready, (self.submit_seq, bi, c))
        call = (
            self.batches[bi].calls[self.call_idx[bi]]
            if self.call_idx[bi] < len(self.batches[bi].calls)
            else None
        )
        if call is not None and call.offset <= t < call.offset + len(call.durations):
            self.call_left[bi] -= 1
            if self.call_left[bi] == 0 and call.blocking:
                self.call_done(bi)
        self.dispatch()

    def run(self) -> Result:
        self.admit()
        while self.events:
            t, _, kind, data = heapq.heappop(self.events)
            self.now = t
            if kind == "submit":
                self.submit(data)
            elif kind == "task_done":
                self.task_done(*data)
            elif kind == "batch_done":
                self._account()
                del self.running[data]
                self.admit()
        if self.running or self.next_batch < len(self.batches):
            raise RuntimeError(
                f"model stalled at {self.now:.1f} s with {len(self.running)} batches running: "
                "a task waits on a dependency no call of its batch runs (task graph not captured)"
            )
        n = sum(b.n_tasks for b in self.batches)
        return Result(
            self.now,
            self.busy,
            self.threads,
            self.max_in_flight,
            self.inflight_area / self.now if self.now else 0.0,
            self.client_busy,
            n * self.sched,
            n,
        )


def simulate(
    batches: list[Batch], threads: int, budget: int, cap: int, sched: float, rtt: float
) -> Result:
    """Run the model; see the module docstring."""
    for b in batches:
        off = 0
        for c in b.calls:
            c.offset = off
            off += len(c.durations)
    return _Sim(batches, threads, budget, cap, sched, rtt).run()
