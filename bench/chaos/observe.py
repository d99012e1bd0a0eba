"""What the harness reads from Parley while and after it runs: the outbox, the statuses, the API's views."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import redis

from bench.chaos.client import request
from bench.chaos.settings import KEY, TENANT
from gateway.state import keys

POLL_S = 0.5  # an outbox list keeps its newest 1000 entries; the load adds at most about 40 a second
FIRST_READ = 300
FIND_LISTS_S = 2.0  # a new shard's outbox list is found this soon (a list keeps 1000: far longer than this)
RQ_QUEUE = f"rq:queue:{keys.QUEUE}"  # RQ's list of waiting jobs
# Log lines worth counting: how often a send was given back to the next lease, a batch met a Redis outage,
# or something failed outright.
LOG_MARKS = {
    "given_back": b"given back",
    "redis_unavailable": b"Redis unavailable",
    "failed_in_worker": b"failed in the worker",
    "tracebacks": b"Traceback",
}


class OutboxWatch:
    """Every entry of the tenant's outbox, read often enough to see each before it is trimmed away.

    The outbox is one or more Redis lists (one per shard of notifications, and one for messages of no
    notification: gateway/state/keys.py), newest first, each trimmed to 1000. They are found by name
    (`...outbox:<tenant>`), so the watch does not depend on how many shards there are. An entry carries
    `at`: when the outbox adapter stamped it, just before the script that stored it ran."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        self.entries: list[dict[str, Any]] = []
        self.gaps = 0  # reads that found nothing already seen in a full list: entries may have been missed
        self.queue_depths: list[tuple[float, int]] = []  # RQ jobs waiting, at each read
        self._lists: set[bytes] = set()
        self._seen: set[bytes] = set()
        self._last = self._found = 0.0

    def poll(self, now: float, force: bool = False) -> None:
        if not force and now - self._last < POLL_S:
            return
        self._last = now
        try:
            self.queue_depths.append((now, int(self.client.llen(RQ_QUEUE))))
            if force or now - self._found > FIND_LISTS_S:
                self._lists |= set(
                    self.client.scan_iter(match=f"{keys.PREFIX}*outbox:{TENANT}", count=1000, _type="list")
                )
                self._found = now
            for name in sorted(self._lists):
                self._read(name, now)
        except redis.RedisError:
            return  # Redis is restarting: the next read finds them

    def _read(self, name: bytes, now: float) -> None:
        raw = _bytes(self.client.lrange(name, 0, FIRST_READ - 1))
        if len(raw) == FIRST_READ and raw[-1] not in self._seen:
            raw = _bytes(self.client.lrange(name, 0, -1))
        new = [item for item in raw if item not in self._seen]
        if self._seen and new and len(new) == len(raw) >= keys.OUTBOX_KEEP:
            self.gaps += 1
        for item in reversed(new):  # oldest first
            self._seen.add(item)
            self.entries.append(json.loads(item) | {"seen_at": now})

    def close(self) -> None:
        self.client.close()


def _bytes(items: list[bytes | str]) -> list[bytes]:
    return [item if isinstance(item, bytes) else item.encode() for item in items]


def unfinished(client: redis.Redis, ids: list[str]) -> list[str]:
    """The notifications still active (one that is not found is not waited for: it is lost)."""
    pipe = client.pipeline(transaction=False)
    for nid in ids:
        pipe.hget(keys.notification(nid), "status")
    return [nid for nid, status in zip(ids, pipe.execute(), strict=True) if status == b"active"]


def metrics(client: redis.Redis) -> dict[str, int]:
    return {
        str(k, "utf-8") if isinstance(k, bytes) else str(k): int(v) for k, v in client.hgetall(keys.METRICS).items()
    }


async def views(bases: list[str], ids: list[str], connections: int = 16) -> dict[str, dict[str, Any] | None]:
    """GET /v1/notifications/{id} for each: the view, or None for a 404. Retried through 503s and
    connection errors for up to a minute; a notification that never answered is left out."""
    found: dict[str, dict[str, Any] | None] = {}
    gate = asyncio.Semaphore(connections)

    async def one(n: int, nid: str) -> None:
        async with gate:
            for attempt in range(120):
                try:
                    status, body = await request(bases[(n + attempt) % len(bases)], "GET", f"/v1/notifications/{nid}",
                                                 None, KEY, {})  # fmt: skip
                except (OSError, EOFError, ValueError, IndexError):
                    status, body = 0, None
                if status == 200 and isinstance(body, dict):
                    found[nid] = body
                    return
                if status == 404:
                    found[nid] = None
                    return
                await asyncio.sleep(0.5)

    await asyncio.gather(*(one(n, nid) for n, nid in enumerate(ids)))
    return found


def log_counts(paths: list[Path]) -> dict[str, int]:
    """How often each of LOG_MARKS occurs in these logs."""
    counts = dict.fromkeys(LOG_MARKS, 0)
    for path in paths:
        text = path.read_bytes() if path.exists() else b""
        for name, mark in LOG_MARKS.items():
            counts[name] += text.count(mark)
    return counts
