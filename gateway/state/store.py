"""The state store: every Redis read and write Parley makes goes through here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import redis
import redis.asyncio as aredis
from pydantic_core import to_json
from redis.exceptions import NoScriptError

from gateway import metrics
from gateway.state import keys, lua
from gateway.state.autopipe import AutoPipeline, hiredis_packing
from gateway.state.cluster import ClusterCommands, ClusterWrites, indexes
from gateway.state.connection import NO_WAIT, ReplicaWait, blocking_pool, cluster_client, eval_then_wait, is_cluster
from gateway.state.records import RECEIPTS, Delivery, Stored
from rules.durations import to_ms
from rules.model import Policy, StopEvent
from rules.phone import digest as phone_digest
from rules.status import DeliveryStatus, refused_from

IDEMPOTENCY_TTL = timedelta(hours=24)
HANDOVER_WAIT_S = 5.0  # the longest a stop's answer waits for a send in hand-over (provider latency: 0.1-0.5 s)
HANDOVER_STALE_MS = 120_000  # a hand-over older than this was left by a worker that died mid-call
POLICY_TTL = timedelta(days=30)


@dataclass(frozen=True)
class Created:
    outcome: Literal["created", "exists", "conflict"]
    id: str


class Store:
    """Async access for the API and the workers."""

    def __init__(
        self, client: aredis.Redis, retention: timedelta, piped: aredis.Redis | None = None, wait: ReplicaWait = NO_WAIT,
        *, shards: int = 1, cluster: bool = False, queue: aredis.Redis | None = None,
    ) -> None:  # fmt: skip
        self.r = client
        self.shards = shards  # new notifications go to one of this many shards (gateway/state/keys.py)
        # On a Redis Cluster a notification's tenant-level keys (indexes, idempotency, policy snapshot) are
        # written beside its scripts, not in them (gateway/state/cluster.py).
        self.cluster = cluster
        self._beside = ClusterWrites(client, int(retention.total_seconds()), int(IDEMPOTENCY_TTL.total_seconds()),
                                     int(POLICY_TTL.total_seconds()))  # fmt: skip
        self.wait = wait  # the replicas that must have a stop before it is acknowledged (redis.wait_replicas)
        self._piped = piped
        self._queue = queue or client  # where RQ's queue is (redis.queue_url)
        # The hot paths' commands (scripts, loads, counters), pipelined; a cluster client routes each itself.
        self._pipe: AutoPipeline | ClusterCommands = (
            ClusterCommands(client) if cluster else AutoPipeline(piped or client)
        )
        self.retention_s = int(retention.total_seconds())
        self._scripts = {name: client.register_script(getattr(lua, name)) for name in _SCRIPTS}
        self._policies: dict[str, Policy] = {}
        self._loading: dict[str, asyncio.Future[Policy | None]] = {}  # reads under way (policy)
        self._stored_policies: set[str] = set()

    @classmethod
    def connect(
        cls,
        url: str,
        retention: timedelta,
        wait: ReplicaWait = NO_WAIT,
        *,
        shards: int = 1,
        queue_url: str | None = None,
    ) -> Store:
        """A store on a plain, Sentinel or Cluster URL (gateway/state/connection.py); RQ's queue on `queue_url`
        when it is elsewhere."""
        queue = aredis.Redis.from_pool(blocking_pool(queue_url, max_connections=4, timeout=5)) if queue_url else None
        if is_cluster(url):
            client = cluster_client(url, max_connections=100)
            return cls(client, retention, None, wait, shards=shards, cluster=True, queue=queue)  # type: ignore[arg-type]

        # A blocking pool: past max_connections a command waits for a free connection instead of
        # failing (redis-py's default pool raised "Too many connections", a 500, under python -m bench).
        # A plain or a Sentinel URL alike (gateway/state/connection.py).
        def pool(**options: Any) -> aredis.ConnectionPool:
            return hiredis_packing(blocking_pool(
                url, decode_responses=True, max_connections=100, timeout=20, **options
            ))  # fmt: skip

        # The auto-pipeline times out whole pipelines itself (gateway/state/autopipe.py).
        piped = aredis.Redis.from_pool(pool(socket_timeout=None))
        return cls(aredis.Redis.from_pool(pool()), retention, piped, wait, shards=shards, queue=queue)

    async def close(self) -> None:
        await self._pipe.aclose()
        await self.r.aclose()
        if self._piped is not None:
            await self._piped.aclose()
        if self._queue is not self.r:
            await self._queue.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.r.ping())
        except (redis.RedisError, OSError):
            return False

    async def _run(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        script = self._scripts[name]
        try:
            return await self._pipe.execute("EVALSHA", script.sha, len(keys_), *keys_, *args)
        except NoScriptError:  # a new or restarted Redis: load it once, then as before
            await self.r.script_load(script.script)
            return await self._pipe.execute("EVALSHA", script.sha, len(keys_), *keys_, *args)

    # -- creating ---------------------------------------------------------------------------

    def new_id(self) -> str:
        """An id for a new notification, in one of the shards (gateway/state/keys.py)."""
        return keys.new_id(self.shards)

    async def create(
        self, *, nid: str, tenant: str, fields: dict[str, str], policy: Policy, digest: str, due: datetime,
        idempotency_key: str | None, body_hash: str, correlation_key: str | None, phone: str | None = None,
    ) -> Created:  # fmt: skip
        """Store a notification, its policy snapshot, idempotency key and first due step, and count it
        (metrics.INTENTS): one round trip (on a cluster, gateway/state/cluster.py: three)."""
        if self.cluster:
            outcome, nid = await self._beside.create(
                self._run, self._stored_policies, nid, tenant, fields, (policy, digest), due,
                (idempotency_key, body_hash), (correlation_key, phone),
            )  # fmt: skip
            return Created(outcome, nid)
        nkey = keys.notification(nid)
        idem = keys.idempotency(tenant, idempotency_key) if idempotency_key else nkey
        corr = keys.correlation(tenant, correlation_key) if correlation_key else nkey
        flat = [item for pair in fields.items() for item in pair]
        for attempt in range(2):
            snapshot = policy.model_dump_json() if attempt or digest not in self._stored_policies else ""
            args = [nid, body_hash if idempotency_key else "", to_ms(due), snapshot, int(POLICY_TTL.total_seconds()),
                    int(IDEMPOTENCY_TTL.total_seconds()), self.retention_s, metrics.INTENTS, *flat]  # fmt: skip
            phone_key = keys.phone_index(tenant, phone) if phone else nkey
            nkeys = [nkey, idem, corr, keys.due(keys.shard_of(nid)), keys.policy(digest), phone_key,
                     keys.shard_metrics(keys.shard_of(nid))]  # fmt: skip
            result = await self._run("CREATE", nkeys, args)
            if result[0] != "need_policy":
                break
        self._stored_policies.add(digest)
        if result[0] == "created":
            return Created("created", nid)
        prior_id, _, prior_hash = str(result[1]).partition(" ")
        return Created("exists" if prior_hash == body_hash else "conflict", prior_id)

    # -- reading ----------------------------------------------------------------------------

    async def load(self, nid: str) -> Stored | None:
        reply = await self._pipe.execute("HGETALL", keys.notification(nid))  # RESP3: a map; RESP2: a flat list
        raw: dict[str, str] = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
        if not raw or "tenant" not in raw:
            return None
        return Stored.from_hash(nid, raw)

    async def load_for(self, tenant: str, nid: str) -> Stored | None:
        """A notification only for the tenant that owns it (others get None, as if it did not exist)."""
        stored = await self.load(nid)
        return stored if stored is not None and stored.tenant == tenant else None

    async def log(self, nid: str) -> list[dict[str, Any]]:
        return [json.loads(item) for item in await self.r.lrange(keys.notification_log(nid), 0, -1)]

    async def policy(self, digest: str) -> Policy | None:
        """A policy snapshot, read and parsed once per process: a worker's first notifications of a
        version, started together, share one read. Each read and parsed its own before, hundreds at once
        through the connection pool: in py-spy's profile of a fresh worker's first 2,000 first steps,
        Store.policy took 59 µs of CPU per step (python -m bench.profile; warm: a dict lookup)."""
        cached = self._policies.get(digest)
        if cached is not None:
            return cached
        loading = self._loading.get(digest)
        if loading is None:
            loading = self._loading[digest] = asyncio.ensure_future(self._read_policy(digest))
            loading.add_done_callback(lambda _: self._loading.pop(digest, None))
        return await asyncio.shield(loading)  # one caller cancelled does not cancel the others' read

    async def _read_policy(self, digest: str) -> Policy | None:
        raw = await self.r.get(keys.policy(digest))
        if raw is None:
            return None
        policy = self._policies[digest] = Policy.model_validate_json(raw)
        return policy

    # -- the worker's writes (fenced) -----------------------------------------------------

    async def claim(self, nid: str, token: int, delivery: Delivery) -> bool:
        """Record a decided attempt before it is performed; refused once the fence moved."""
        args = [token, f"a:{delivery.key}", delivery.stored()]
        return bool(await self._run("FENCED_SET", [keys.notification(nid)], args))

    async def hand_over(self, nid: str, token: int, attempt: str) -> bool:
        """At a send's hand-over to its provider: whether the notification still runs under this fence
        token; if so, the attempt is marked as being handed over until its outcome is recorded."""
        args = [token, attempt, int(time.time() * 1000)]
        return bool(await self._run("HANDOVER", [keys.notification(nid)], args))

    async def record(self, nid: str, delivery: Delivery, log: dict[str, Any] | None = None) -> bool:
        """Store a performed attempt's outcome (allowed to the claimant even after a stop)."""
        entry = json.dumps(log) if log else ""
        pid = delivery.provider_id if delivery.channel in RECEIPTS else None
        if pid and self.cluster:  # in another slot: indexed first (a receipt for an unrecorded attempt waits)
            await self._beside.index_provider_id(pid, f"{nid} {delivery.key}")
            pid = None
        index = keys.provider_index(pid) if pid else keys.notification(nid)
        args = [f"a:{delivery.key}", delivery.claim, delivery.stored(), entry, _REFUSED[delivery.status],
                f"{nid} {delivery.key}" if pid else "", self.retention_s]  # fmt: skip
        return bool(await self._run("RECORD", [keys.notification(nid), keys.notification_log(nid), index], args))

    async def by_provider_id(self, provider_id: str) -> tuple[str, str] | None:
        """(notification id, attempt key) for a provider's message id, if we sent it."""
        found = await self.r.get(keys.provider_index(provider_id))
        if not found:
            return None
        nid, _, attempt = str(found).partition(" ")
        return nid, attempt

    async def receipt_raw(
        self, nid: str, attempt: str, expected: str, after: Delivery, now: datetime, log: dict[str, Any] | None
    ) -> bool:
        """Compare-and-set one attempt (against its stored text) from a provider receipt;
        a failure makes the notification due now so its fallback runs."""
        failed = after.status is DeliveryStatus.FAILED
        args = [nid, f"a:{attempt}", expected, after.stored(), to_ms(now),
                "1" if failed else "0", json.dumps(log) if log else ""]  # fmt: skip
        nkeys = [keys.notification(nid), keys.due(keys.shard_of(nid)), keys.notification_log(nid)]
        return bool(await self._run("RECEIPT", nkeys, args))

    async def raw_attempt(self, nid: str, attempt: str) -> str | None:
        value = await self.r.hget(keys.notification(nid), f"a:{attempt}")
        return str(value) if value is not None else None

    async def note(self, nid: str, entry: dict[str, Any]) -> None:
        await self.r.rpush(keys.notification_log(nid), json.dumps(entry))

    async def replace_intent(self, nid: str, token: int, intent_json: str) -> bool:
        return bool(await self._run("FENCED_SET", [keys.notification(nid)], [token, "intent", intent_json]))

    # -- phones: replies and opt-outs -------------------------------------------------------

    async def by_phone(self, tenant: str, phone: str) -> list[str]:
        return sorted(str(m) for m in await self.r.smembers(keys.phone_index(tenant, phone)))

    async def opt_out(self, tenant: str, phone: str, out: bool) -> None:
        digest = phone_digest(phone)
        if out:
            await self.r.sadd(keys.opted_out(tenant), digest)
        else:
            await self.r.srem(keys.opted_out(tenant), digest)

    async def is_opted_out(self, tenant: str, phone: str) -> bool:
        return bool(await self.r.sismember(keys.opted_out(tenant), phone_digest(phone)))

    async def seen(self, source: str, delivery_id: str) -> bool:
        """Whether a webhook delivery was handled already (replays are ignored)."""
        return bool(await self.r.exists(keys.webhook_seen(source, delivery_id)))

    async def mark_seen(self, source: str, delivery_id: str, ttl_s: int = 86400) -> None:
        """Remember a webhook delivery for `ttl_s`, once it was handled: a provider's retry of a delivery
        that failed half-way (Redis away: a 503) is handled again, not taken for a replay."""
        await self.r.set(keys.webhook_seen(source, delivery_id), "1", ex=ttl_s)

    async def queue_length(self) -> int:
        """Jobs waiting in the RQ queue (RQ owns the key; its name is RQ's `rq:queue:<name>`)."""
        return int(await self._queue.llen(f"rq:queue:{keys.QUEUE}"))

    async def advance(
        self,
        stored: Stored,
        token: int,
        *,
        next_due: datetime | None,
        final: tuple[str, datetime, str | None] | None = None,
        now: datetime,
    ) -> bool:
        nid = stored.id
        status, at, reason = final if final else ("", None, None)
        # Indexes must outlive the wait before the next step, however long the policy waits.
        wait_s = max(0, int((next_due - now).total_seconds())) if next_due else 0
        index_ttl, policy_ttl = self.retention_s + wait_s, int(POLICY_TTL.total_seconds()) + wait_s
        args = [nid, token, to_ms(next_due) if next_due else "", status, at.isoformat() if at else "", reason or "",
                self.retention_s, index_ttl, policy_ttl]  # fmt: skip
        policy_key = keys.notification(nid) if self.cluster else keys.policy(stored.version)  # cluster: none
        done = bool(await self._run("ADVANCE", [*self._family(stored), policy_key], args))
        if done and self.cluster:
            await self._beside.after_advance(stored, ended=bool(final), index_ttl=index_ttl, policy_ttl=policy_ttl)
        return done

    def _family(self, stored: Stored) -> list[str]:
        """The keys the ADVANCE and STOP scripts release; on a cluster without the tenant's indexes."""
        nid, n = stored.id, keys.notification(stored.id)
        corr, phone = (None, None) if self.cluster else indexes(stored)
        return [
            n,
            keys.due(keys.shard_of(nid)),
            corr or n,
            keys.notification_log(nid),
            keys.outbox_sent(nid),
            phone or n,
        ]

    # -- responses --------------------------------------------------------------------------

    async def stop(self, tenant: str, stored: Stored, kind: StopEvent, at: datetime, source: str) -> str:
        """Record an event; stop the notification if its policy ends on it. Returns
        'stopped', 'recorded' (kept running), 'inactive' (already over) or 'missing'.

        With redis.wait_replicas, NotReplicated when fewer replicas had it in time: the stop holds on the
        master, but a failover now could lose it. Retrying is safe: the STOP script answers 'inactive' (and
        records the event again), and its write makes the WAIT cover the first one too."""
        nid = stored.id
        event = json.dumps({"type": kind.value, "at": at.isoformat(), "source": source})
        args = [nid, tenant, kind.value, event, at.isoformat(), self.retention_s, metrics.stop_field(kind)]
        family = [*self._family(stored), keys.shard_metrics(keys.shard_of(nid))]
        if self.wait.replicas:
            result = str(await eval_then_wait(self.r, lua.STOP, family, args, self.wait))
        else:
            result = str(await self._run("STOP", family, args))
        if result == "stopped":
            if self.cluster:
                await self._beside.release(stored)
            await self._handed_over(nid)
        return result

    async def _handed_over(self, nid: str) -> None:
        """Wait (at most HANDOVER_WAIT_S) for a send the notification was handing to its provider when it
        stopped: the stop is then acknowledged after that send, never before it (python -m bench.chaos
        saw SMTP transactions start 2 to 5 ms after a stop's 200, their fence checked just before it)."""
        deadline = time.monotonic() + HANDOVER_WAIT_S
        while time.monotonic() < deadline:
            handing = await self._pipe.execute("HGET", keys.notification(nid), "handover")
            if not handing or time.time() * 1000 - int(str(handing).rpartition(" ")[2]) > HANDOVER_STALE_MS:
                return  # none, or left by a worker that died mid-call
            await asyncio.sleep(0.01)

    async def stop_all(
        self, tenant: str, ids: list[str], kind: StopEvent, at: datetime, source: str,
        only: Callable[[Stored], bool] | None = None,
    ) -> dict[str, list[str]]:  # fmt: skip
        """`stop` for each of the tenant's notifications in `ids` (that `only` accepts), by result."""
        results: dict[str, list[str]] = {"stopped": [], "recorded": [], "inactive": []}
        for nid in ids:
            stored = await self.load_for(tenant, nid)
            if stored is not None and (only is None or only(stored)):
                results.setdefault(await self.stop(tenant, stored, kind, at, source), []).append(nid)
        return results

    async def correlated(self, tenant: str, correlation_key: str) -> list[str]:
        return sorted(str(m) for m in await self.r.smembers(keys.correlation(tenant, correlation_key)))

    # -- outbox provider --------------------------------------------------------------------

    async def outbox_put(self, tenant: str, nid: str, fence: int, attempt_key: str, message: dict[str, Any]) -> str:
        args = [fence, attempt_key, _outbox_entry(message), keys.OUTBOX_KEEP, self.retention_s]
        nkeys = [keys.notification(nid), keys.outbox(tenant, keys.shard_of(nid)), keys.outbox_sent(nid)]
        return str(await self._run("OUTBOX", nkeys, args))

    async def outbox_append(self, tenant: str, message: dict[str, Any]) -> None:
        """An outbox entry that belongs to no notification (masked-session relays)."""
        async with self.r.pipeline(transaction=not self.cluster) as pipe:  # a cluster pipeline has no MULTI
            pipe.lpush(keys.outbox(tenant), _outbox_entry(message))
            pipe.ltrim(keys.outbox(tenant), 0, keys.OUTBOX_KEEP - 1)
            pipe.expire(keys.outbox(tenant), self.retention_s)
            await pipe.execute()

    async def outbox(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` messages of every shard's list and the relays' list, newest first."""
        lists = [keys.outbox(tenant, shard) for shard in range(self.shards)] + [keys.outbox(tenant)]
        found = await asyncio.gather(*(self.r.lrange(key, 0, limit - 1) for key in lists))
        messages = [json.loads(item) for items in found for item in items]
        return sorted(messages, key=lambda m: str(m.get("at", "")), reverse=True)[:limit]

    # -- metrics ----------------------------------------------------------------------------

    async def count(self, *fields: str, amount: int = 1) -> None:
        await asyncio.gather(*(self._pipe.execute("HINCRBY", keys.METRICS, field, amount) for field in fields))

    async def count_many(self, amounts: dict[str, int]) -> None:
        await asyncio.gather(*(self._pipe.execute("HINCRBY", keys.METRICS, f, n) for f, n in amounts.items() if n))

    async def counters(self) -> dict[str, int]:
        """The workers' counters and every shard's, added up."""
        hashes = [keys.METRICS, *(keys.shard_metrics(shard) for shard in range(self.shards))]
        total: dict[str, int] = {}
        for found in await asyncio.gather(*(self.r.hgetall(key) for key in hashes)):
            for field, value in found.items():
                total[str(field)] = total.get(str(field), 0) + int(value)
        return total

    async def due_depth(self) -> int:
        return sum(await asyncio.gather(*(self.r.zcard(keys.due(shard)) for shard in range(self.shards))))

    # -- rate limits and the audit log ------------------------------------------------------

    async def rate_incr(self, key: str, window_s: int, amount: int) -> int:
        """Count a hit in a fixed window that starts with its first hit (gateway/http/ratelimit.py)."""
        return int(await self._run("RATE_INCR", [keys.rate_limit(key)], [amount, window_s]))

    async def rate_count(self, key: str) -> int:
        """Hits counted in a rate-limit window so far (0 when there is none)."""
        return int(await self._pipe.execute("GET", keys.rate_limit(key)) or 0)

    async def rate_left_s(self, key: str) -> float:
        """Seconds until a rate-limit window ends (0 when there is none: PTTL answers -2)."""
        return max(0.0, int(await self._pipe.execute("PTTL", keys.rate_limit(key))) / 1000)

    async def rate_clear(self, key: str) -> None:
        await self.r.delete(keys.rate_limit(key))

    async def audit_add(self, tenant: str, entry: str, min_id_ms: int, max_entries: int, ttl_s: int) -> str:
        """Append an audit entry; entries before `min_id_ms` and beyond `max_entries` are trimmed."""
        key = keys.audit(tenant)
        async with self.r.pipeline(transaction=not self.cluster) as pipe:  # a cluster pipeline has no MULTI
            pipe.xadd(key, {"e": entry}, maxlen=max_entries, approximate=True)
            pipe.xtrim(key, minid=str(min_id_ms), approximate=True)
            pipe.expire(key, ttl_s)
            added = await pipe.execute()
        return str(added[0])

    async def audit_read(self, tenant: str, before: str, limit: int) -> list[tuple[str, str]]:
        """Newest first, strictly before the entry id `before` ("+" for the newest)."""
        end = before if before == "+" else f"({before}"
        rows = await self.r.xrevrange(keys.audit(tenant), max=end, min="-", count=limit) or []
        return [(str(entry_id), str((fields or {})["e"])) for entry_id, fields in rows]

    async def rules_generation(self) -> int:
        return int(await self.r.get(keys.rules_generation()) or 0)

    async def bump_rules_generation(self) -> int:
        return int(await self.r.incr(keys.rules_generation()))


def _outbox_entry(message: dict[str, Any]) -> bytes:
    """One outbox list entry, however it got there. pydantic's encoder: a quarter of json.dumps's CPU for a
    rendered email (compact UTF-8; readers json.loads it)."""
    return to_json(message)


_SCRIPTS = ("CREATE", "FENCED_SET", "HANDOVER", "RECORD", "RECEIPT", "ADVANCE", "STOP", "OUTBOX", "RATE_INCR")


# The RECORD script's refused_from argument per new status, from the one transition table.
_REFUSED = {new: "," + ",".join(sorted(refused_from(new))) + "," for new in DeliveryStatus}
