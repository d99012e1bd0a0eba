"""Creating many notifications fast: through the Store, with the hash the API writes, not due until armed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.env import Env
from bench.scenario import LATER_WAIT_MS, TENANT, intent_json
from gateway.config import load_settings
from gateway.http.notifications import notification_fields
from gateway.rulesets import RulesHolder
from gateway.state import keys
from gateway.state.store import Store
from rules.intent import Intent

CONCURRENCY = 64
PIPELINE = 5000
PARKED = timedelta(days=1)  # seeded notifications wait here until armed


def seed(env: Env, event: str, count: int, config: Path | None = None) -> list[str]:
    """Create `count` active notifications for `event` under the rules of `config` (else the benchmark's
    config); none is due before it is armed."""
    return asyncio.run(_seed(env, event, count, config or env.config))


async def _seed(env: Env, event: str, count: int, config: Path) -> list[str]:
    settings = load_settings(config, env=env.child_env)
    holder = RulesHolder(settings)
    assert not holder.reload(), "the benchmark's rules do not load"
    assert holder.current is not None
    store = Store.connect(env.server.url, settings.retention)
    try:
        ids: list[str] = []
        for start in range(0, count, CONCURRENCY):
            chunk = range(start, min(start + CONCURRENCY, count))
            ids += await asyncio.gather(*(_create(store, holder, event, i) for i in chunk))
        return ids
    finally:
        await store.close()


async def _create(store: Store, holder: RulesHolder, event: str, i: int) -> str:
    loaded = holder.current
    assert loaded is not None
    intent = Intent.model_validate_json(intent_json(i, event))
    policy = loaded.rules.select(intent)
    assert policy is not None, event
    now = datetime.now(UTC)
    nid = store.new_id()
    version = loaded.versions[policy.name]
    fields = notification_fields(TENANT, policy, version, intent, now)
    created = await store.create(
        nid=nid, tenant=TENANT, fields=fields, policy=policy, digest=version, due=now + PARKED,
        idempotency_key=None, body_hash="", correlation_key=None, phone=intent.recipient.phone,
    )  # fmt: skip
    assert created.outcome == "created"
    return nid


def release(client: redis.Redis, ids: list[str], due_ms: int) -> None:
    """Make seeded notifications due at once (their first step has no wait)."""
    for start in range(0, len(ids), PIPELINE):  # one shard: python -m bench runs one Redis, redis.shards 1
        client.zadd(keys.due(0), dict.fromkeys(ids[start : start + PIPELINE], due_ms), xx=True)


def release_at(client: redis.Redis, schedule: Iterable[tuple[str, int]]) -> None:
    """Make seeded notifications due at the given times (their first step has no wait, so the due
    time is the score alone: nothing is counted from their start)."""
    pipe = client.pipeline(transaction=False)
    for n, (nid, due_ms) in enumerate(schedule, 1):
        pipe.zadd(keys.due(keys.shard_of(nid)), {nid: due_ms}, xx=True)
        if n % PIPELINE == 0:
            pipe.execute()
    pipe.execute()


def arm_later(client: redis.Redis, schedule: Iterable[tuple[str, int]]) -> None:
    """Give `due-later` notifications their due times: started `wait` before it, and scored at it,
    exactly as if they had been created that long ago."""
    pipe = client.pipeline(transaction=False)
    for n, (nid, due_ms) in enumerate(schedule, 1):
        pipe.hset(keys.notification(nid), "created_ms", str(due_ms - LATER_WAIT_MS))
        pipe.zadd(keys.due(keys.shard_of(nid)), {nid: due_ms}, xx=True)
        if n % PIPELINE == 0:
            pipe.execute()
    pipe.execute()


def spread(ids: list[str], start_ms: int, window_s: float) -> list[tuple[str, int]]:
    """Due times spread evenly over the window, in id order."""
    step = window_s * 1000 / max(len(ids), 1)
    return [(nid, start_ms + int(i * step)) for i, nid in enumerate(ids)]
