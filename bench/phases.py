"""Where a first step's CPU goes, phase by phase (issue 18): the dispatch scenario's step run in the
benchmark's own process, with a CPU clock around each part of gateway.delivery.runner.process.

The notifications run one at a time (one `process()` after another, not a batch at once as a worker
runs them), so that the CPU spent between a phase's start and end is that phase's own: nothing else
is in flight. That also means every Redis command is a round trip of its own, where a worker's
auto-pipeline shares one between the notifications of a batch (gateway/state/autopipe.py): the Redis
phases cost more here than in a worker, and so does `other` (the event loop's turn per reply).
`total_batched` says how much: the same step for as many other notifications, run as a worker runs
them (gateway.delivery.worker.run_batch hands jobs of MAX_BATCH to its sending loop, which runs them
all at once), no clocks inside. What no figure here covers is a worker's RQ bookkeeping per job and
its timer thread's leasing and enqueueing: a real worker's CPU per step (dispatch's
`workers_1.cpu_us`) minus `total_batched` is that share (dispatch's `cpu_outside_batches_us`), plus
whatever the machine's drift between the two measurements adds.

For where the CPU goes function by function, `python -m bench.profile` profiles a worker under the
same load (bench/profile.py).
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvloop

from bench.env import BenchError, Env
from bench.seed import release, seed
from gateway import metrics
from gateway.config import load_settings
from gateway.delivery import runner, worker
from gateway.delivery.runner import Runtime, process
from gateway.state.due import Leased, TimerStore
from gateway.wiring import runtime_for
from rules import engine
from rules.model import Channel

EVENT = "bench.dispatch"  # bench/dispatch.py's policy: a first step of one email, then a wait of an hour
SENT = metrics.send_field("email", "delivered")
PHASES = ("load", "plan", "render", "claim", "send", "record", "advance")
# What each phase wraps: on the Store, on the Renderer, on every channel's (outbox) adapter, and the engine's
# plan as gateway.delivery.runner imported it.
STORE_PHASES = {"load": "load", "policy": "load", "claim": "claim", "record": "record", "advance": "advance"}
WARMUP = 50  # first runs not counted: the policy's first load, the templates' first compile, the scripts' first call
LEASE_MS = 60_000
T = TypeVar("T")


class _Clocks:
    """CPU nanoseconds per phase, each phase without the wrapped phases it calls (none do today)."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._inner: list[int] = []  # per open phase: the CPU of the phases it called

    def _close(self, phase: str, started: int) -> None:
        took = time.thread_time_ns() - started
        self.calls[phase] += 1
        self.spent[phase] += took - self._inner.pop()
        if self._inner:
            self._inner[-1] += took

    def sync(self, phase: str, fn: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            self._inner.append(0)
            started = time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                self._close(phase, started)

        return timed

    def coro(self, phase: str, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def timed(*args: Any, **kwargs: Any) -> T:
            self._inner.append(0)
            started = time.thread_time_ns()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._close(phase, started)

        return timed


def runtime(env: Env) -> Runtime:
    """A worker's Runtime, built as `parley worker` builds it, on the benchmark's config and Valkey."""
    return runtime_for(load_settings(env.config, env=env.child_env), env.server.url)


def leased(env: Env, count: int) -> list[Leased]:
    """`count` seeded dispatch notifications, made due now and leased as a worker's timer leases them
    (the LEASE script: each one's fencing token bumped, its due score moved to the lease's end)."""
    ids = seed(env, EVENT, count)
    now_ms = int(time.time() * 1000)
    release(env.client, ids, now_ms)
    timers = TimerStore(env.client, load_settings(env.config, env=env.child_env).redis_shards)
    found: list[Leased] = []
    while len(found) < count:
        got = timers.lease(now_ms, count - len(found), LEASE_MS)
        if not got:
            raise BenchError(f"phases: only {len(found)} of {count} seeded notifications could be leased")
        found += got
    return found


def split(env: Env, count: int) -> dict[str, float]:
    """CPU µs per first step in each phase of gateway.delivery.runner.process, for `count` notifications
    run one at a time (see the module's docstring for what that does and does not cover):

    load (Store.load, Store.policy), plan (rules.engine.plan; two per look: the step, then what is next),
    render (Renderer.render), claim (Store.claim), send (the outbox adapter's send: its OUTBOX script),
    record (Store.record), advance (Store.advance), other (the runner's own code, the records' models,
    the event loop), measuring (the clock reads themselves, estimated), total (their sum);
    total_batched: the same step for `count` other notifications, run as a worker's jobs run them, unclocked;
    system and system_batched: how much of total and total_batched was the kernel's.
    Runs no worker process: call it while none runs, or their timers would lease the notifications first."""
    items = leased(env, 2 * (WARMUP + count))
    one_by_one, batched = items[: WARMUP + count], items[WARMUP + count :]
    clocks = _Clocks()
    total_ns, sys_ns = _sequential(env, clocks, one_by_one[:WARMUP], one_by_one[WARMUP:])
    read_ns = _clock_read_ns()
    batched_ns, batched_sys_ns = _batched(env, batched[:WARMUP], batched[WARMUP:])
    env.clear()
    # A phase's span holds about one clock read (the end of the first, the start of the second); the
    # other read of each pair falls outside it: both are `measuring`, not the phase's or `other`'s.
    found = {phase: (clocks.spent[phase] - clocks.calls[phase] * read_ns) / count / 1000 for phase in PHASES}
    found["measuring"] = 2 * sum(clocks.calls.values()) * read_ns / count / 1000
    found["other"] = total_ns / count / 1000 - sum(found.values())
    found["total"] = total_ns / count / 1000
    found["total_batched"] = batched_ns / count / 1000
    # Of which in the kernel (system calls: the sockets, the event loop's polls), from getrusage: how a
    # machine's system calls cost is a difference between machines of their own.
    found["system"] = sys_ns / count / 1000
    found["system_batched"] = batched_sys_ns / count / 1000
    return found


def _sequential(env: Env, clocks: _Clocks, warmup: list[Leased], items: list[Leased]) -> tuple[int, int]:
    """CPU ns (all, and in the kernel) of running `items` one after another with a clock around each phase,
    on an event loop of the worker's kind (uvloop) in this thread."""
    rt = runtime(env)
    loop = uvloop.new_event_loop()
    wrapped: list[tuple[object, str]] = []
    try:
        for name, phase in STORE_PHASES.items():
            setattr(rt.store, name, clocks.coro(phase, getattr(rt.store, name)))
            wrapped.append((rt.store, name))
        setattr(rt.renderer, "render", clocks.sync("render", rt.renderer.render))  # noqa: B010
        wrapped.append((rt.renderer, "render"))
        for channel in Channel:
            adapter = rt.channels[channel]
            setattr(adapter, "send", clocks.coro("send", adapter.send))  # noqa: B010
            wrapped.append((adapter, "send"))
        setattr(runner, "plan", clocks.sync("plan", engine.plan))  # noqa: B010  (the name runner imported)

        async def run(batch: list[Leased]) -> tuple[int, int]:
            started, kernel = time.thread_time_ns(), _system_ns(resource.RUSAGE_THREAD)
            for item in batch:
                await process(rt, item)
            return time.thread_time_ns() - started, _system_ns(resource.RUSAGE_THREAD) - kernel

        gc.collect()
        gc.disable()  # as in a worker (gateway/delivery/sends.py)
        try:
            loop.run_until_complete(run(warmup))
            clocks.spent.clear()
            clocks.calls.clear()
            before = rt.tally[SENT]
            spent = loop.run_until_complete(run(items))
        finally:
            gc.enable()
        if rt.tally[SENT] - before != len(items):
            raise BenchError(f"phases: {rt.tally[SENT] - before} of {len(items)} first steps sent")
        return spent
    finally:
        setattr(runner, "plan", engine.plan)  # noqa: B010
        for owner, name in wrapped:
            delattr(owner, name)  # the class's method again
        loop.run_until_complete(rt.store.close())
        loop.close()


def _batched(env: Env, warmup: list[Leased], items: list[Leased]) -> tuple[int, int]:
    """CPU ns (this process's, all threads; all, and in the kernel) of running `items` as a worker's jobs do: worker.run_batch hands
    each job of at most MAX_BATCH to the sending loop, which runs them all at once in its own thread."""
    sends = worker.install(runtime(env))
    try:
        _jobs(warmup)
        sends.settle()
        before = env.counter(SENT)
        started, kernel = time.process_time_ns(), _system_ns(resource.RUSAGE_SELF)
        _jobs(items)
        sends.settle()
        cpu, kernel = time.process_time_ns() - started, _system_ns(resource.RUSAGE_SELF) - kernel
    finally:
        sends.settle(60.0)
        asyncio.run_coroutine_threadsafe(sends.runtime.store.close(), sends.loop).result(10.0)  # on its loop
        worker.uninstall()
    if env.counter(SENT) - before != len(items):
        raise BenchError(f"phases: {env.counter(SENT) - before} of {len(items)} batched first steps sent")
    return cpu, kernel


def _system_ns(who: int) -> int:
    """System CPU so far (Linux accounts it at the scheduler's tick and scales it: over a run of hundreds
    of ms it is a fair share, not a per-call figure)."""
    return int(resource.getrusage(who).ru_stime * 1e9)


def _jobs(items: list[Leased]) -> None:
    for start in range(0, len(items), worker.MAX_BATCH):
        chunk = [[x.id, x.due_ms, x.token] for x in items[start : start + worker.MAX_BATCH]]
        worker.run_batch(chunk, int(time.time() * 1000) + LEASE_MS)


def _clock_read_ns(reads: int = 20_000) -> float:
    """What one time.thread_time_ns() costs (a system call), so the clocks' own cost is not put on `other`."""
    clock = time.thread_time_ns
    started = clock()
    for _ in range(reads):
        clock()
    return (clock() - started) / reads
