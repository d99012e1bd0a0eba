"""On a Redis Cluster: the writes to a tenant's keys that a notification's scripts cannot make.

A script runs on one slot. A notification's keys share its shard's slot (gateway/state/keys.py),
but its tenant's keys (the idempotency key, the correlation and phone indexes) and its policy
snapshot are in slots of their own. On one Redis (or Sentinel) the scripts write them too, in the
same step; on a cluster the store passes "none" for them to the scripts and calls these instead,
in an order that never loses a notification:

* the idempotency key is reserved first (SET NX, holding the new id): a retry of the same request
  finds it and finishes creating that id, or finds the notification done;
* the indexes and the policy snapshot are written before the notification itself, so anything
  that can find it can read its policy. An index member whose notification was never created is
  skipped by its readers (they load each id) and expires with the index;
* members leave the indexes after the notification ends (a crash in between leaves a member that
  readers skip, until the index's TTL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import redis.asyncio as aredis

from gateway import metrics
from gateway.state import keys
from gateway.state.records import Stored
from rules.durations import to_ms
from rules.model import Policy

Reserved = tuple[Literal["reserved", "retry", "conflict"], str]
Run = Callable[[str, list[str], list[Any]], Awaitable[Any]]  # the store's script runner


class ClusterCommands:
    """The auto-pipeline's interface (gateway/state/autopipe.py) on a cluster client, which sends each
    command to the node that has its slot (pipelining per node is redis-py's cluster pipeline, not used
    here yet: a cluster is for capacity, and each node pipelines its own clients' commands)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def execute(self, *args: Any) -> Any:
        return await self.client.execute_command(*args)

    async def aclose(self) -> None:
        """Nothing of its own to close: the store closes the client."""


@dataclass
class ClusterWrites:
    r: aredis.Redis
    retention_s: int
    idempotency_ttl_s: int
    policy_ttl_s: int

    async def reserve(self, tenant: str, key: str, nid: str, body_hash: str) -> Reserved:
        """Claim an Idempotency-Key for `nid`: 'reserved'; or the id it already names: 'retry' (the same
        body: create that id, or find it created) or 'conflict' (another body)."""
        name = keys.idempotency(tenant, key)
        for _ in range(2):  # the key may expire between the SET and the GET
            if await self.r.set(name, f"{nid} {body_hash}", nx=True, ex=self.idempotency_ttl_s):
                return "reserved", nid
            prior = await self.r.get(name)
            if prior is not None:
                prior_id, _, prior_hash = str(prior).partition(" ")
                return ("retry" if prior_hash == body_hash else "conflict"), prior_id
        return "reserved", nid

    async def create(
        self, run: Run, known: set[str], nid: str, tenant: str, fields: dict[str, str], policy: tuple[Policy, str],
        due: datetime, idempotency: tuple[str | None, str], indexed: tuple[str | None, str | None],
    ) -> tuple[Literal["created", "exists", "conflict"], str]:  # fmt: skip
        """The store's `create`: the Idempotency-Key reserved, then the policy snapshot (unless in `known`,
        the digests stored already) and the indexes, then the notification (the CREATE script, through
        `run`, on its shard's slot alone)."""
        key, body_hash = idempotency
        if key:
            verdict, nid = await self.reserve(tenant, key, nid, body_hash)
            if verdict == "conflict":
                return "conflict", nid
        model, digest = policy
        snapshot = None if digest in known else model.model_dump_json()
        await self.before_create(nid, tenant, (digest, snapshot), *indexed)
        known.add(digest)
        nkey, shard = keys.notification(nid), keys.shard_of(nid)
        args = [nid, "", to_ms(due), "", 0, 0, 0, metrics.INTENTS, *(i for pair in fields.items() for i in pair)]
        nkeys = [nkey, nkey, nkey, keys.due(shard), nkey, nkey, keys.shard_metrics(shard)]
        result = await run("CREATE", nkeys, args)
        return ("created" if result[0] == "created" else "exists"), nid

    async def before_create(
        self, nid: str, tenant: str, policy: tuple[str, str | None], correlation: str | None, phone: str | None
    ) -> None:
        """The policy snapshot (`(digest, json)`; json None: known to be stored, refresh its TTL) and the
        indexes, before the notification exists."""
        digest, snapshot = policy
        writes = [self._policy(digest, snapshot)]
        if correlation:
            writes.append(self._add(keys.correlation(tenant, correlation), nid))
        if phone:
            writes.append(self._add(keys.phone_index(tenant, phone), nid))
        await asyncio.gather(*writes)

    async def _policy(self, digest: str, snapshot: str | None) -> None:
        name = keys.policy(digest)
        if snapshot is None and await self.r.expire(name, self.policy_ttl_s):
            return
        if snapshot is not None:
            await self.r.set(name, snapshot, ex=self.policy_ttl_s)

    async def _add(self, index: str, nid: str) -> None:
        async with self.r.pipeline(transaction=False) as pipe:  # one key: one node
            pipe.sadd(index, nid)
            pipe.expire(index, self.retention_s)
            await pipe.execute()

    async def after_advance(self, stored: Stored, *, ended: bool, index_ttl: int, policy_ttl: int) -> None:
        """What the ADVANCE script does to the indexes on one Redis: leave them when the notification
        ended, else make them (and the policy snapshot) outlive its next step."""
        if ended:
            await self.release(stored)
            return
        names = [name for name in indexes(stored) if name is not None]
        await asyncio.gather(
            self.r.expire(keys.policy(stored.version), policy_ttl, gt=True),
            *(self.r.expire(name, index_ttl, gt=True) for name in names),
        )

    async def release(self, stored: Stored) -> None:
        await asyncio.gather(*(self.r.srem(name, stored.id) for name in indexes(stored) if name is not None))

    async def index_provider_id(self, provider_id: str, value: str) -> None:
        await self.r.set(keys.provider_index(provider_id), value, ex=self.retention_s)


def indexes(stored: Stored) -> tuple[str | None, str | None]:
    """The notification's correlation and phone index keys (None: it is in none)."""
    tenant, phone = stored.tenant, stored.intent.recipient.phone
    corr = keys.correlation(tenant, stored.correlation_key) if stored.correlation_key else None
    return corr, keys.phone_index(tenant, phone) if phone else None
