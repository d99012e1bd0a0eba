"""The faults: when (seeded), what, and the restart that follows each, as a supervisor would do it.

Each fault goes scheduled -> restarting (the process is down) -> recovering (started again, not yet
answering) -> done. One fault at a time: one due while another is still recovering waits for it, so
each recovery time belongs to one fault.
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from dataclasses import dataclass

from bench.chaos.cluster import Cluster, Proc, api_ready, worker_ready
from bench.chaos.settings import REDIS_SIGKILL, REDIS_SIGTERM, WORKER_KILL, Options

RECOVERY_LIMIT_S = 60.0  # a process not answering this long after its restart is reported as never back
REDIS_SIGNALS = {REDIS_SIGTERM: signal.SIGTERM, REDIS_SIGKILL: signal.SIGKILL}


@dataclass
class Fault:
    kind: str
    due: float  # seconds after the load started, as scheduled
    target: str = ""
    at: float | None = None  # when it was done (time.time())
    restart_at: float | None = None  # the process started again; Redis: answering again
    back_at: float | None = None  # the restarted API or worker ready; Redis: every API ready again
    phase: str = "scheduled"
    note: str = ""


def schedule(options: Options, rnd: random.Random) -> list[Fault]:
    """The faults at random moments of the load's middle 80 %, at least `gap` apart, in random order."""
    kinds = list(options.faults)
    rnd.shuffle(kinds)
    lo, hi = options.load_s * 0.1, options.load_s * 0.9
    gap = min(8.0, (hi - lo) / (len(kinds) + 1))
    for _ in range(10_000):
        moments = sorted(rnd.uniform(lo, hi) for _ in kinds)
        if all(b - a >= gap for a, b in itertools.pairwise(moments)):
            break
    else:  # so many faults that random draws rarely fit: evenly spaced
        moments = [lo + (hi - lo) * (n + 0.5) / len(kinds) for n in range(len(kinds))]
    return [Fault(kind, due) for kind, due in zip(kinds, moments, strict=True)]


class Injector:
    def __init__(self, cluster: Cluster, options: Options, faults: list[Fault], rnd: random.Random) -> None:
        self.cluster, self.options, self.faults, self.rnd = cluster, options, faults, rnd
        self.started = 0.0
        self._restart_due = 0.0

    @property
    def done(self) -> bool:
        return all(f.phase == "done" for f in self.faults)

    def tick(self, now: float) -> None:
        busy = next((f for f in self.faults if f.phase in ("restarting", "recovering")), None)
        if busy is not None:
            self._advance(busy, now)
            return
        due = next((f for f in self.faults if f.phase == "scheduled"), None)
        if due is not None and now >= self.started + due.due:
            self._inflict(due, now)

    def _inflict(self, fault: Fault, now: float) -> None:
        fault.at, fault.phase = now, "restarting"
        self._restart_due = now + self.options.restart_after_s
        if fault.kind in REDIS_SIGNALS:
            fault.target = "redis"
            self.cluster.signal_redis(REDIS_SIGNALS[fault.kind])
            return
        procs = self.cluster.workers if fault.kind == WORKER_KILL else self.cluster.apis
        live = [p for p in procs if p.alive()]
        if not live:
            fault.phase, fault.note = "done", "nothing left to kill"
            return
        proc = self.rnd.choice(live)
        fault.target = proc.name
        self.cluster.kill(proc)

    def _advance(self, fault: Fault, now: float) -> None:
        if fault.phase == "restarting":
            if now < self._restart_due:
                return
            if fault.kind in REDIS_SIGNALS:
                fault.restart_at = self.cluster.start_redis()
            else:
                self.cluster.spawn(self._target(fault))
                fault.restart_at = time.time()
            fault.phase = "recovering"
            return
        if self._recovered(fault):
            fault.back_at, fault.phase = time.time(), "done"
        elif fault.restart_at is not None and now - fault.restart_at > RECOVERY_LIMIT_S:
            fault.phase, fault.note = "done", f"not back within {RECOVERY_LIMIT_S:.0f} s"

    def _target(self, fault: Fault) -> Proc:
        return next(p for p in (*self.cluster.workers, *self.cluster.apis) if p.name == fault.target)

    def _recovered(self, fault: Fault) -> bool:
        if fault.kind in REDIS_SIGNALS:
            return all(api_ready(p) for p in self.cluster.apis if p.alive())
        proc = self._target(fault)
        return worker_ready(proc) if fault.kind == WORKER_KILL else api_ready(proc)
