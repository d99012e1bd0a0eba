"""Footprint: Redis memory per active notification (INFO memory before and after).

Measured twice with the shipped inquiry policy: right after creation, and once the first step
(push and email) is delivered and the escalation waits for its next step, which is what an
active notification spends most of its life as. The outbox list is per tenant and capped, not
per notification, so its size is left out of the second figure.
"""

from __future__ import annotations

import time
from typing import Any

from bench.env import BenchError, Env
from bench.scenario import intent_json
from bench.seed import release, seed
from gateway.state import keys

EVENT = "inquiry.created"
WORKERS = 2


def run(env: Env, count: int) -> dict[str, Any]:
    env.clear()
    base = env.used_memory()
    ids = seed(env, EVENT, count)
    created = env.used_memory()
    started = env.workers(WORKERS)
    try:
        release(env.client, ids, int(time.time() * 1000))
        _wait_advanced(env, count)
    finally:
        env.stop_all(started)
    outbox = int(env.client.memory_usage(keys.outbox("bench", 0)) or 0)
    waiting = env.used_memory() - outbox
    intent_bytes = sum(len(intent_json(i, EVENT)) for i in range(count)) / count
    env.clear()
    per = (waiting - base) / count
    return {
        "bytes_per_notification": per, "bytes_at_creation": (created - base) / count,
        "intent_bytes": intent_bytes, "ratio_to_intent": per / intent_bytes, "notifications": count,
    }  # fmt: skip


def _wait_advanced(env: Env, count: int, timeout: float = 300.0) -> None:
    """Every notification ran its first step and waits for the next (due in 15 minutes)."""
    deadline = time.time() + timeout
    while int(env.client.zcount(keys.due(0), time.time() * 1000 + 600_000, time.time() * 1000 + 1_200_000)) < count:
        if time.time() > deadline:
            raise BenchError("footprint: the first steps did not all finish")
        time.sleep(0.1)
