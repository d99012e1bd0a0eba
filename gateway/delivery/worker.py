"""RQ wiring: the timer that turns due notifications into jobs, and the job that runs them.

Jobs carry batches of due notifications (RQ costs tens of Redis commands per
job, so one job per step would cap a worker at a few hundred steps/s). A job
hands its batch to the worker's sending loop (gateway/delivery/sends.py) and
returns once each notification has a slot: sends of many jobs overlap while
they wait on providers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue

from gateway.delivery.runner import Runtime
from gateway.delivery.sends import IN_FLIGHT, Sends
from gateway.state import keys
from gateway.state.due import Leased, TimerStore

log = logging.getLogger("parley.worker")

BATCH = 200  # the smallest job cut from a backlog; a lease of fewer due steps is one job
MAX_BATCH = 500  # the largest: RQ's own work is ~5 ms of CPU per job, whatever the job's size
LEASE_LIMIT = 2000  # due steps one lease takes at most
LEASE_MS = 60_000  # a notification a job leased and not finished by then is run again by another worker
POLL_S = 0.02  # the longest the timer sleeps: bounds how late an item added "now" fires
COALESCE_S = 0.05  # after leasing a partial batch: lets steps falling due meanwhile share one job
# Jobs that may wait in RQ's queue before the timers lease more. A job waiting means every worker is
# busy (its RQ thread waiting for a slot of worker.in_flight, or for RQ's own work): leasing more would only age those leases in the queue (a lease that ran out there was "given
# back" and performed a lease later: python -m bench.chaos, 0.2 s SMTP at 20 intents/s, 1381 jobs
# waiting), and cut the backlog into many small jobs where a big one serves it better once a worker is
# free. With 4 instead of 1, steps ran p50 0.59 s late instead of 0.2 s in that run.
MAX_WAITING_JOBS = 1
# How often a timer looks at the queue while it is full: a worker that takes the last job should find
# the next one leased soon after (python -m bench --quick, dispatch with 2 workers, lost ~20 % with 20 ms).
FULL_POLL_S = 0.005

_sends: Sends | None = None


def install(runtime: Runtime, in_flight: int = IN_FLIGHT) -> Sends:
    """Give this process the runtime its jobs use, and start the loop that runs their sends (a runtime
    installed before is stopped once what it has in flight is done)."""
    global _sends
    if _sends is not None:
        _sends.stop()
    _sends = Sends(runtime, in_flight).start()
    return _sends


def uninstall() -> None:
    """Stop the sending loop once what it has in flight is done (tests; a worker stops it itself)."""
    global _sends
    if _sends is not None:
        _sends.stop()
        _sends = None


def installed() -> Sends:
    if _sends is None:
        raise RuntimeError("worker runtime not installed (start workers with `parley worker`)")
    return _sends


def run_batch(items: list[list[Any]], lease_until_ms: int | None = None) -> int:
    """The RQ job: hand each leased notification to the sending loop. Returns how many were started,
    once each has a slot; their sends go on while the worker takes the next job.

    `lease_until_ms` is when the timer's lease on them ends (on the clock both use); jobs
    enqueued without it (an older timer) send without that bound."""
    sends = installed()
    deadline = None
    if lease_until_ms is not None:  # on the monotonic clock, which the adapters read while sending
        deadline = time.monotonic() + lease_until_ms / 1000 - sends.runtime.clock().timestamp()
    return sends.submit([Leased(str(i[0]), int(i[1]), int(i[2])) for i in items], deadline)


def job_sizes(count: int, behind: int = 0) -> list[int]:
    """How a lease of `count` due steps is cut into jobs, with `behind` more due steps still waiting for
    the next lease: a quarter of all that is left, between BATCH and MAX_BATCH (a remainder smaller than
    BATCH joins the last job, or the one before takes BATCH fewer). Big jobs while a backlog lasts spread
    RQ's per-job work over more steps; the shrinking ones at its end let every worker finish at about the
    same time (one big job left last would keep one worker busy while the others idle)."""
    sizes: list[int] = []
    left = count
    while left > 0:
        size = max(BATCH, min(MAX_BATCH, (left + behind) // 4))
        if left - size < BATCH:  # no job smaller than BATCH after this one
            size = left if left <= MAX_BATCH else left - BATCH
        sizes.append(size)
        left -= size
    return sizes


class Timer:
    """Leases due notifications and enqueues them as RQ jobs. Safe to run in every worker."""

    def __init__(
        self, client: redis.Redis, queue: Queue, clock: Callable[[], datetime] | None = None, lease_ms: int = LEASE_MS,
        shards: int = 1,
    ) -> None:  # fmt: skip
        self.store = TimerStore(client, shards)
        self.lease_ms = lease_ms
        self.queue = queue
        self.clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()

    def fire(self) -> int:
        """Enqueue everything due now; returns how many notifications were leased."""
        now_ms = int(self.clock().timestamp() * 1000)
        leased = self.store.lease(now_ms, LEASE_LIMIT, self.lease_ms)
        behind = self.store.due_count(now_ms) if len(leased) >= LEASE_LIMIT else 0
        jobs, start = [], 0
        for size in job_sizes(len(leased), behind):
            chunk = [[x.id, x.due_ms, x.token] for x in leased[start : start + size]]
            start += size
            jobs.append(Queue.prepare_data(
                run_batch, [chunk, now_ms + self.lease_ms],  # the lease's end, as the LEASE script set it
                result_ttl=0, failure_ttl=7 * 86400, timeout=max(self.lease_ms // 1000, 1),
            ))  # fmt: skip
        if jobs:
            self.queue.enqueue_many(jobs)  # one round trip for all of them
        return len(leased)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                if self.queue.count >= MAX_WAITING_JOBS:  # every worker busy: due steps wait unleased
                    self._stop.wait(FULL_POLL_S)
                    continue
                fired = self.fire()
                if fired >= LEASE_LIMIT:
                    continue  # a backlog: keep leasing
                if fired:
                    # Due times spread over time would otherwise be leased one by one, each its own
                    # RQ job (milliseconds of RQ bookkeeping per notification; python -m bench found
                    # it capping two workers at ~250 steps/s). Waiting lets the steps falling due in
                    # the next COALESCE_S share a job, for at most that much added lateness.
                    wait = COALESCE_S
                else:
                    nxt = self.store.next_due_ms()
                    now_ms = self.clock().timestamp() * 1000
                    wait = POLL_S if nxt is None else min(max((nxt - now_ms) / 1000, 0.0), POLL_S)
            except redis.RedisError as exc:
                log.warning("timer: Redis unavailable (%s); retrying", exc)
                wait = 1.0
            self._stop.wait(wait)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="parley-timer", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def queue_for(client: redis.Redis) -> Queue:
    return Queue(keys.QUEUE, connection=client)


def wait_for_redis(client: redis.Redis, seconds: float | None = 10.0) -> None:
    """Until Redis answers a PING: at most `seconds` (None: for as long as it takes), polling every
    50 ms at first and at most every 2 s. Through Sentinel the PING goes to the master the sentinels
    name: while they name none (a failover under way, or the sentinels unreachable) the client raises
    MasterNotFoundError, a ConnectionError, so that too is waited out."""
    deadline = None if seconds is None else time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            client.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError):  # BusyLoadingError (loading its AOF) is one too
            if deadline is not None and time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
