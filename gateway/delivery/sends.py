"""The worker's sends in flight: one event loop, in its own thread, running every notification the
worker has leased, many at once.

An RQ job hands its leased notifications over and returns as soon as each has a slot: the worker
then takes the next job while the sends of earlier ones still wait on their providers. Before, a job
ran until its slowest send had answered, so with providers answering in 0.2 s two workers topped out
near 10 sends/s and the queue grew without bound (issue 18). The slots bound how many notifications
one worker runs at once (`worker.in_flight`); each provider bounds its own calls (`max_sessions`,
`max_in_flight`), so a slow provider fills its own bound, not the others'. When every slot is taken,
the job waits for one: the next jobs stay in RQ's queue for another worker, and the timer leases no
more while one is waiting there (gateway/delivery/worker.py).

Nothing here changes what a lease guarantees: each notification runs under its job's lease, with the
lease's end as its deadline, fenced by the lease's token; one whose lease ends before it gets a slot is
not started, and the timer gives it to the next lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import threading
import time
from collections import Counter
from dataclasses import replace

import redis
import uvloop

from gateway import metrics
from gateway.delivery.runner import STORE_ERRORS, STORE_RETRY_PAUSES_S, Runtime, may_wait, process
from gateway.state.due import Leased
from rules.durations import from_ms

log = logging.getLogger("parley.worker")

IN_FLIGHT = 500  # worker.in_flight: notifications one worker runs at once
# Not started with less of its lease left: the run's Redis writes need time, and a provider call that
# could outlast the lease is not started anyway (channels.base.too_late).
MIN_LEASE_LEFT_S = 1.0
# The cyclic collector is off while the worker runs, and collects this often instead. With hundreds of
# notifications in flight the youngest generation fills with live objects that every collection walks
# and none frees (jobs of 500: ~15 ms a collection, ~30 µs of CPU per step, timed with gc.callbacks).
# Reference counting frees what a step allocates; the few cycles (tracebacks, finished tasks) wait.
COLLECT_EVERY_S = 10.0


class Sends:
    """The worker's sending loop. `submit` is called from RQ's thread; everything else runs in the loop."""

    def __init__(self, runtime: Runtime, in_flight: int = IN_FLIGHT) -> None:
        self.runtime = runtime
        self.in_flight = in_flight
        self.loop = uvloop.new_event_loop()
        self._slots = asyncio.Semaphore(in_flight)  # bound to self.loop on first use (Python ≥ 3.10)
        self._running: set[asyncio.Task[None]] = set()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="parley-sends", daemon=True)
        self._collecting = gc.isenabled()

    def start(self) -> Sends:
        gc.disable()
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        collector = self.loop.create_task(self._collect())
        self.loop.run_forever()
        collector.cancel()
        self.loop.run_until_complete(asyncio.gather(collector, return_exceptions=True))
        self.loop.close()

    def submit(self, leased: list[Leased], deadline: float | None) -> int:
        """Run `leased` under a lease ending at `deadline` (time.monotonic()); returns once each has a slot
        (or was left to the next lease), with how many were started."""
        admitted: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self._start_batch, leased, deadline, admitted)
        return admitted.result()

    def _start_batch(
        self, leased: list[Leased], deadline: float | None, admitted: concurrent.futures.Future[int]
    ) -> None:
        self._idle.clear()
        task = self.loop.create_task(self._batch(replace(self.runtime, deadline=deadline), leased, admitted))
        self._track(task)

    async def _batch(self, rt: Runtime, leased: list[Leased], admitted: concurrent.futures.Future[int]) -> None:
        """Start each notification as a slot frees, then wait for them all and write the batch's counters."""
        started: list[asyncio.Task[None]] = []
        try:
            for item in leased:
                if not await self._slot(rt.deadline):
                    break  # the rest wait for their lease to end, and the next lease
                late = max((rt.clock() - from_ms(item.due_ms)).total_seconds(), 0.0)  # a slot's wait included
                rt.tally.update(metrics.lateness_fields(late))
                started.append(self._track(self.loop.create_task(self._one(rt, item))))
        finally:
            admitted.set_result(len(started))
        await asyncio.gather(*started, return_exceptions=True)
        await self._count(rt)

    async def _slot(self, deadline: float | None) -> bool:
        """A slot, or False if the lease would end first (with MIN_LEASE_LEFT_S to spare)."""
        left = None if deadline is None else deadline - time.monotonic() - MIN_LEASE_LEFT_S
        if left is not None and left <= 0:
            return False
        if left is None or not self._slots.locked():  # a free slot: no timer (wait_for costs a task)
            await self._slots.acquire()
            return True
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=left)
        except TimeoutError:
            return False
        return True

    async def _one(self, rt: Runtime, item: Leased) -> None:
        try:
            await _process(rt, item)
        except Exception:  # a bug, not a provider error: the lease expires and the notification is retried
            log.exception("notification %s failed in the worker", item.id)
        finally:
            self._slots.release()

    async def _count(self, rt: Runtime) -> None:
        """The counters of /metrics, written once per batch (one round trip per notification each was a
        fifth of a worker's Redis traffic). Every batch shares the runtime's tally."""
        counts = Counter(rt.tally)
        rt.tally.clear()
        try:
            await rt.store.count_many(counts)
        except STORE_ERRORS:  # Redis away: the next batch writes them
            rt.tally.update(counts)

    def _track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not self._running:
            self._idle.set()

    async def _collect(self) -> None:
        while True:
            await asyncio.sleep(COLLECT_EVERY_S)
            gc.collect()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is in flight (tests; a worker stopping). False if `timeout` passed first."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Let what is in flight finish (at most `timeout`), then end the loop. Returns whether all did;
        what did not is performed by the next lease (an attempt claimed and unrecorded becomes `unknown`)."""
        settled = self.settle(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if self._collecting:
            gc.enable()
        return settled


async def _process(rt: Runtime, item: Leased) -> None:
    """process(), run again after a Redis outage while the lease allows. Safe: every write is fenced by
    the lease's token, and a run continues where the record ends (as after a crash)."""
    for pause in (*STORE_RETRY_PAUSES_S, None):
        try:
            await process(rt, item)
            return
        except STORE_ERRORS as exc:
            if pause is None or not may_wait(rt, pause):  # the run's writes must all fit in the lease
                raise
            # A plain ConnectionError or TimeoutError may come from the auto-pipeline's socket, or from
            # an adapter that failed to classify a provider error (a bug): run again only if Redis is
            # really away, never to repeat a provider call at once.
            if not isinstance(exc, redis.RedisError) and await rt.store.ping():
                raise
            log.warning("notification %s: Redis unavailable (%s); trying again in %.2f s", item.id, exc, pause)
            await asyncio.sleep(pause)
