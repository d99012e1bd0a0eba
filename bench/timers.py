"""Timers: many escalations whose next step falls due within a window; how late (or early) each fires.

A fire's time is the one the worker records on the attempt it starts (`at`: the clock the engine
planned with, read before the message is rendered and handed to the outbox); its due time is the
notification's start plus the policy's first wait, the exact millisecond the engine computes.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import redis

from bench.env import BenchError, Env, cpu_seconds
from bench.scenario import LATER_ATTEMPT
from bench.seed import arm_later, seed, spread
from bench.stats import summary_ms
from gateway import metrics
from gateway.state import keys

EVENT = "bench.later"
SENT = metrics.send_field("email", "delivered")
WORKERS = 2  # one per core on the reference machine
LEAD_S = 3.0  # between arming and the first due time


def run(env: Env, count: int, window_s: float) -> dict[str, Any]:
    started = env.workers(WORKERS)
    try:
        ids = seed(env, EVENT, count)
        before = env.counter(SENT)
        first_ms = int((time.time() + LEAD_S + count / 100_000) * 1000)
        schedule = spread(ids, first_ms, window_s)
        arm_later(env.client, schedule)
        if time.time() * 1000 > first_ms:
            raise BenchError("timers: arming took longer than the lead time; the first fires would be late")
        cpu = cpu_seconds(*(w.pid for w in started))
        _wait_sent(env, before + count, deadline=time.time() + LEAD_S + window_s + 300)
        cpu = cpu_seconds(*(w.pid for w in started)) - cpu
        done = time.time()
    finally:
        env.stop_all(started)
    late = lateness_ms(env.client, schedule)
    env.clear()
    return {
        **summary_ms(late), "early": sum(1 for x in late if x < 0), "missing": count - len(late),
        "escalations": count, "window_s": window_s, "workers": WORKERS, "offered_per_s": count / window_s,
        "fired_per_s": count / max(done - first_ms / 1000, 1e-3), "worker_cpu_us": cpu * 1e6 / count,
    }  # fmt: skip


def _wait_sent(env: Env, target: int, deadline: float) -> None:
    while env.counter(SENT) < target:
        if time.time() > deadline:
            raise BenchError(f"timers: {target - env.counter(SENT)} steps had not fired by the deadline")
        time.sleep(0.1)


def lateness_ms(client: redis.Redis, schedule: list[tuple[str, int]]) -> list[float]:
    """Each fire's recorded start time minus its due time, in ms (negative = early)."""
    late: list[float] = []
    for start in range(0, len(schedule), 5000):
        chunk = schedule[start : start + 5000]
        pipe = client.pipeline(transaction=False)
        for nid, _ in chunk:
            pipe.hget(keys.notification(nid), f"a:{LATER_ATTEMPT}")
        for (_, due_ms), raw in zip(chunk, pipe.execute(), strict=True):
            if raw is not None:
                fired = datetime.fromisoformat(json.loads(raw)["at"]).timestamp() * 1000
                late.append(fired - due_ms)
    return late
