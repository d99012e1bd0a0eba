"""The state store's masking part: number pool, sessions and the routing table, in Redis."""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import redis
import redis.asyncio as aredis

from masking import keys
from masking.assign import Exhausted, assign
from masking.model import Interaction, Participant, ParticipantIn, Session, SessionStatus
from rules.durations import to_ms
from rules.phone import country_of

# Close a session: free its numbers for its participants and mark it. KEYS: session, expiry
# ARGV: status, retention_s. Fields of the session hash name the keys it occupies.
CLOSE = """
local f = redis.call('HMGET', KEYS[1], 'status', 'held_a', 'proxy_a', 'held_b', 'proxy_b', 'pair', 'usage', 'id')
if not f[1] or f[1] ~= 'open' then return 0 end
if redis.call('HGET', f[2], f[3]) == f[8] then redis.call('HDEL', f[2], f[3]) end
if redis.call('HGET', f[4], f[5]) == f[8] then redis.call('HDEL', f[4], f[5]) end
if f[6] ~= '' and redis.call('GET', f[6]) == f[8] then redis.call('DEL', f[6]) end
redis.call('HINCRBY', f[7], f[3], -1)
redis.call('HINCRBY', f[7], f[5], -1)
redis.call('ZREM', KEYS[2], f[8])
redis.call('HSET', KEYS[1], 'status', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1] .. ':log', ARGV[2])
return 1
"""


# Add numbers to a tenant's pool, all or none. KEYS: number -> tenant hash, the tenant's pool.
# ARGV: tenant, then (number, country) pairs. Returns the numbers another tenant holds (then adds none).
# One script: two tenants adding the same number at once cannot both see it free.
ADD = """
local taken = {}
for i = 2, #ARGV, 2 do
  local owner = redis.call('HGET', KEYS[1], ARGV[i])
  if owner and owner ~= ARGV[1] then taken[#taken + 1] = ARGV[i] end
end
if #taken > 0 then return taken end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return taken
"""

# How long an agent call's context is kept: Twilio rings the agent for up to 60 s after the call is
# created; past this the agent's answer finds nothing and hears that the conversation has ended.
AGENT_CALL_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class AgentCall:
    """What POST /v1/calls decided, kept in Redis so the callback URL carries only an opaque id."""

    tenant: str
    session: str
    participant: str
    agent: str


@dataclass(frozen=True)
class Opened:
    session: Session
    created: bool  # False: the same participants and correlation key already had this open session


class MaskingStore:
    def __init__(self, client: aredis.Redis, retention: timedelta) -> None:
        self.r = client
        self.retention_s = int(retention.total_seconds())
        self._close = client.register_script(CLOSE)
        self._add = client.register_script(ADD)

    # -- the pool --------------------------------------------------------------------------

    async def add_numbers(self, tenant: str, numbers: list[str], reserved: Collection[str] = ()) -> list[str]:
        """Add numbers to a tenant's pool, all or none: returns those refused (then nothing was added),
        the `reserved` ones (Settings.not_for_pool) and those in another tenant's pool."""
        wanted = list(dict.fromkeys(numbers))
        refused = [n for n in wanted if n in reserved]
        if refused:
            return refused
        pairs = [part for n in wanted for part in (n, country_of(n))]
        taken = await self._add(keys=[keys.MASK_NUMBERS, keys.mask_pool(tenant)], args=[tenant, *pairs])
        return [str(n) for n in taken]

    async def remove_number(self, tenant: str, number: str) -> bool:
        if await self.r.hget(keys.MASK_NUMBERS, number) != tenant:
            return False
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.MASK_NUMBERS, number)
            pipe.hdel(keys.mask_pool(tenant), number)
            await pipe.execute()
        return True

    async def pool(self, tenant: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in (await self.r.hgetall(keys.mask_pool(tenant))).items()}

    async def number_owner(self, number: str) -> str | None:
        owner = await self.r.hget(keys.MASK_NUMBERS, number)
        return str(owner) if owner is not None else None

    # -- sessions --------------------------------------------------------------------------

    async def open(self, tenant: str, sid: str, people: list[ParticipantIn], ttl: timedelta, now: datetime,
                   correlation_key: str | None, record: bool) -> Opened | Exhausted:  # fmt: skip
        """Assign proxy numbers and open a session, atomically against concurrent opens (WATCH/MULTI)."""
        a, b = people
        held = (keys.mask_held(tenant, a.phone), keys.mask_held(tenant, b.phone))
        pair = keys.mask_pair(tenant, correlation_key, (a.phone, b.phone)) if correlation_key else ""
        watched = [*held, keys.mask_pool(tenant)] + ([pair] if pair else [])
        async with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watched)
                    existing = await self.session(str(await pipe.get(pair) or "")) if pair else None
                    if existing is not None and existing.is_open(now):
                        return Opened(existing, created=False)  # leaving the block unwatches
                    pool = {str(k): str(v) for k, v in (await pipe.hgetall(keys.mask_pool(tenant))).items()}
                    usage = {str(k): int(v) for k, v in (await pipe.hgetall(keys.mask_usage(tenant))).items()}
                    held_a = {str(n) for n in await pipe.hkeys(held[0])}
                    held_b = {str(n) for n in await pipe.hkeys(held[1])}
                    chosen = assign(pool, held_a, held_b, (a.phone, b.phone), usage)
                    if isinstance(chosen, Exhausted):
                        return chosen
                    session = Session(
                        id=sid, tenant=tenant, created_at=now, expires_at=now + ttl, correlation_key=correlation_key,
                        record=record, participants=(
                            Participant(id=a.id, phone=a.phone, proxy=chosen[0], locale=a.locale),
                            Participant(id=b.id, phone=b.phone, proxy=chosen[1], locale=b.locale),
                        ),
                    )  # fmt: skip
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._write_open(pipe, session, held, pair, ttl)
                    await pipe.execute()
                    return Opened(session, created=True)
                except redis.WatchError:
                    continue  # another open touched these participants: decide again

    def _write_open(
        self, pipe: aredis.client.Pipeline, s: Session, held: tuple[str, str], pair: str, ttl: timedelta
    ) -> None:
        a, b = s.participants
        lifetime = int(ttl.total_seconds()) + self.retention_s
        skey = keys.mask_session(s.id)
        pipe.hset(skey, mapping={
            "id": s.id, "status": "open", "json": s.model_dump_json(), "held_a": held[0], "proxy_a": a.proxy,
            "held_b": held[1], "proxy_b": b.proxy, "pair": pair, "usage": keys.mask_usage(s.tenant),
        })  # fmt: skip
        pipe.expire(skey, lifetime)
        for held_key, proxy in ((held[0], a.proxy), (held[1], b.proxy)):
            pipe.hset(held_key, proxy, s.id)
            pipe.expire(held_key, lifetime, gt=True)
            pipe.hincrby(keys.mask_usage(s.tenant), proxy, 1)
        if pair:
            pipe.set(pair, s.id, ex=int(ttl.total_seconds()))
        pipe.zadd(keys.MASK_EXPIRY, {s.id: to_ms(s.expires_at)})

    async def session(self, sid: str) -> Session | None:
        if not sid:
            return None
        raw = await self.r.hmget(keys.mask_session(sid), ["json", "status"])
        if raw[0] is None:
            return None
        session = Session.model_validate_json(str(raw[0]))
        return session.model_copy(update={"status": SessionStatus(str(raw[1]))})

    async def session_for(self, tenant: str, sid: str) -> Session | None:
        found = await self.session(sid)
        return found if found is not None and found.tenant == tenant else None

    async def close(self, sid: str, status: SessionStatus = SessionStatus.CLOSED) -> bool:
        return bool(
            await self._close(keys=[keys.mask_session(sid), keys.MASK_EXPIRY], args=[status.value, self.retention_s])
        )

    async def expire_due(self, now: datetime, limit: int = 500) -> int:
        due = await self.r.zrangebyscore(keys.MASK_EXPIRY, "-inf", to_ms(now), start=0, num=limit)
        closed = 0
        for sid in due:
            closed += await self.close(str(sid), SessionStatus.EXPIRED)
            await self.r.zrem(keys.MASK_EXPIRY, str(sid))
        return closed

    async def route(self, tenant: str, caller: str, proxy: str) -> Session | None:
        """The open session in which `caller` reaches the other participant through `proxy`."""
        sid = await self.r.hget(keys.mask_held(tenant, caller), proxy)
        return await self.session(str(sid)) if sid else None

    # -- agent calls -----------------------------------------------------------------------

    async def remember_agent_call(self, tenant: str, sid: str, participant_id: str, agent_id: str) -> str:
        """Keep an agent call's context for AGENT_CALL_TTL; returns its opaque id (`ac_<hex>`)."""
        call_id = "ac_" + secrets.token_hex(16)
        context = json.dumps(asdict(AgentCall(tenant, sid, participant_id, agent_id)))
        await self.r.set(keys.mask_agent_call(call_id), context, ex=int(AGENT_CALL_TTL.total_seconds()))
        return call_id

    async def agent_call(self, call_id: str) -> AgentCall | None:
        raw = await self.r.get(keys.mask_agent_call(call_id)) if call_id else None
        return AgentCall(**json.loads(raw)) if raw else None

    # -- interactions ----------------------------------------------------------------------

    async def interact(self, sid: str, interaction: Interaction) -> None:
        await self.r.rpush(keys.mask_interactions(sid), interaction.model_dump_json())

    async def interactions(self, sid: str) -> list[Interaction]:
        return [Interaction.model_validate_json(x) for x in await self.r.lrange(keys.mask_interactions(sid), 0, -1)]

    async def update_interaction(self, sid: str, provider_id: str, **changes: object) -> bool:
        items = await self.r.lrange(keys.mask_interactions(sid), 0, -1)
        for index, raw in enumerate(items):
            data = json.loads(raw)
            if data.get("provider_id") == provider_id:
                data.update({k: v for k, v in changes.items() if v is not None})
                await self.r.lset(keys.mask_interactions(sid), index, json.dumps(data))
                return True
        return False
