"""Rate limits per tenant and per key, and throttling of failed authentication per client address.

The windows are counted in Redis, so every API process shares them. The algorithm and the limit
notation ("100/second", "5000/hour;200/second") are the `limits` library's; only its storage is
ours: the counters go through the state store's auto-pipeline (one script call per hit, batched
with the request's other commands) instead of a second Redis client of the library's own.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import limits
import redis
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter

from gateway.access import Principal
from gateway.state.store import Store

log = logging.getLogger("parley.ratelimit")
BLOCKED_KEEP = 10_000  # addresses remembered as blocked per process
LEASE_SHARE, LEASE_MAX = 100, 50  # units taken ahead: 1 % of a limit, at most 50 (see RateLimiter._take)
LEASES_KEEP = 10_000  # windows with units taken ahead, per process


class Scope(StrEnum):
    """Which calls share a limit (docs/security.md lists the routes of each)."""

    INGEST = "ingest"
    EVENTS = "events"
    MASKING = "masking"
    CALLS = "calls"
    PREVIEWS = "previews"
    READ = "read"
    ADMIN = "admin"


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> tuple[limits.RateLimitItem, ...]:
    return tuple(limits.parse_many(text))


class StoreStorage(Storage):
    """`limits`' storage interface over Parley's state store (fixed windows only)."""

    STORAGE_SCHEME = None

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return (redis.RedisError, OSError)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self.store.rate_incr(key, int(expiry), amount)

    async def get(self, key: str) -> int:
        return await self.store.rate_count(key)

    async def get_expiry(self, key: str) -> float:
        return time.time() + await self.store.rate_left_s(key)

    async def check(self) -> bool:
        return await self.store.ping()

    async def reset(self) -> int | None:
        return None  # never used: clearing every tenant's windows is not something Parley offers

    async def clear(self, key: str) -> None:
        await self.store.rate_clear(key)


@dataclass(frozen=True)
class Refused:
    limit: str  # e.g. "100 per 1 second"
    who: str  # "tenant", "key" or "address"
    retry_after_s: int


class RateLimiter:
    def __init__(self, store: Store, defaults: Mapping[str, str], auth_failures: str) -> None:
        self.defaults = dict(defaults)
        self.auth_failures = auth_failures
        self.strategy = FixedWindowRateLimiter(StoreStorage(store))
        self._blocked: dict[str, float] = {}  # address -> monotonic time its block ends
        # (limit, identifiers) -> (units left, monotonic time they lapse): see _take
        self._leases: dict[tuple[limits.RateLimitItem, tuple[str, ...]], _Lease] = {}

    async def hit(self, who: Principal, scope: Scope) -> Refused | None:
        """Count one call of `scope` against the tenant's limit and the key's own; None: go ahead."""
        # `scope` is a str (StrEnum): used as it is, without the enum's slower `.value`.
        tenant_limit = who.tenant.rate_limits.get(scope) or self.defaults.get(scope)
        refused = await self._hit(tenant_limit, "tenant", ("t", who.name, scope))
        if refused is None and who.key.rate_limits:
            refused = await self._hit(who.key.rate_limits.get(scope), "key", ("k", who.name, who.key.id, scope))
        return refused

    @property
    def blocking(self) -> bool:
        """Whether any address is blocked in this process now (most of the time none is)."""
        return bool(self._blocked)

    def blocked(self, address: str) -> Refused | None:
        """Whether this address failed authentication too often lately. Answered from this process's
        memory: a valid key then costs no Redis round trip for the check. Each process learns of a
        block at its own next failure from that address (counted in Redis, so shared), so across N
        processes an address gets at most N - 1 more tries in a window than the limit."""
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return None
        return Refused(self.auth_failures, "address", max(1, math.ceil(left)))

    async def failed(self, address: str) -> Refused | None:
        """Count a failed authentication; a refusal when the address is now over its limit."""
        refused = await self._hit(self.auth_failures, "address", ("auth", address))
        if refused is not None:
            if len(self._blocked) >= BLOCKED_KEEP:  # bounded: drop the oldest entry
                self._blocked.pop(next(iter(self._blocked)))
            self._blocked[address] = time.monotonic() + refused.retry_after_s
        return refused

    async def _hit(self, text: str | None, who: str, ids: tuple[str, ...]) -> Refused | None:
        if not text:
            return None
        for item in _parsed(text):
            try:
                batch = min(LEASE_MAX, item.amount // LEASE_SHARE)
                if batch < 2 and not await self.strategy.hit(item, *ids):
                    return await self._refusal(item, who, ids)
                refused = await self._admit(item, who, ids, batch) if batch >= 2 else None
            except (redis.RedisError, OSError, limits.errors.StorageError) as exc:
                # Fail open: a Redis that cannot count cannot store notifications either, and the
                # route's own Redis call reports that; a limiter must not turn it into a lock-out.
                log.warning("rate limits unavailable (%s); not throttling", exc)
                return None
            if refused is not None:
                return refused
        return None

    async def _admit(self, item: limits.RateLimitItem, who: str, ids: tuple[str, ...], batch: int) -> Refused | None:
        """Under a high limit, count calls in Redis a batch at a time (1 % of the limit, at most
        LEASE_MAX) and spend the units from memory: a Redis round trip per request cost the API about
        a fifth more CPU per intent (python -m bench, ingest). Calls that arrive while a batch is being
        taken go ahead on credit, paid by the next batch; a refusal is remembered until the window
        ends. The price: across N processes a window may admit up to N batches (plus what arrived
        during one round trip) more than the limit, or, with units taken but unused, fewer."""
        lease, now = self._leases.get((item, ids)), time.monotonic()
        if lease is None or (now >= lease.until and not lease.taking):
            lease = self._leases[(item, ids)] = _Lease()
            if len(self._leases) > LEASES_KEEP:
                self._leases.pop(next(iter(self._leases)))
        if now < lease.refused_until:
            return Refused(str(item), who, max(1, math.ceil(lease.refused_until - now)))
        if lease.units > 0 or lease.taking:
            lease.units -= 1
            return None
        lease.taking, cost = True, batch - lease.units  # units <= 0 here: the batch pays any credit
        try:
            taken = await self.strategy.hit(item, *ids, cost=cost)
        finally:
            lease.taking = False
        if not taken:
            refused = await self._refusal(item, who, ids)
            lease.refused_until = time.monotonic() + refused.retry_after_s
            return refused
        lease.units += cost - 1
        lease.until = now + item.get_expiry()
        return None

    async def _refusal(self, item: limits.RateLimitItem, who: str, ids: tuple[str, ...]) -> Refused:
        stats = await self.strategy.get_window_stats(item, *ids)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return Refused(str(item), who, retry)


@dataclass
class _Lease:
    """Units of one limit's window this process has counted in Redis ahead of its calls."""

    units: int = 0  # left to spend; below 0: calls admitted on credit while a batch was being taken
    until: float = 0.0  # monotonic time the units lapse (the window's length after they were taken)
    taking: bool = False
    refused_until: float = 0.0


def headers(refused: Refused) -> dict[str, Any]:
    return {"Retry-After": str(refused.retry_after_s)}
