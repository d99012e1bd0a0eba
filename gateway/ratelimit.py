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
from typing import TYPE_CHECKING, Annotated, Any

import limits
import redis
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from gateway.access import Principal
    from gateway.store import Store

log = logging.getLogger("parley.ratelimit")
BLOCKED_KEEP = 10_000  # addresses remembered as blocked per process


class Scope(StrEnum):
    """Which calls share a limit (docs/security.md lists the routes of each)."""

    INGEST = "ingest"
    EVENTS = "events"
    MASKING = "masking"
    CALLS = "calls"
    PREVIEWS = "previews"
    READ = "read"
    ADMIN = "admin"


LimitText = Annotated[str, Field(max_length=200)]


class RateLimitSpec(BaseModel):
    """Limits by scope in `limits`' notation; several are joined with ';' ("20/second;1000/hour")."""

    model_config = ConfigDict(extra="forbid")

    ingest: LimitText | None = None
    events: LimitText | None = None
    masking: LimitText | None = None
    calls: LimitText | None = None
    previews: LimitText | None = None
    read: LimitText | None = None
    admin: LimitText | None = None

    @field_validator("*")
    @classmethod
    def _parse(cls, value: str | None) -> str | None:
        return None if value is None else cls.check(value)

    @staticmethod
    def check(value: str) -> str:
        try:
            limits.parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as '100/second' or '20/second;1000/hour'") from None
        return value

    @classmethod
    def defaults(cls) -> RateLimitSpec:
        # Far above what one marketplace sends by accident (1,000 intents a second is 86 million a
        # day), low enough that a runaway loop or a leaked key cannot take the gateway for itself.
        return cls(ingest="1000/second", events="1000/second", masking="100/second", calls="10/second",
                   previews="20/second", read="200/second", admin="10/second")  # fmt: skip

    def given(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


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
        return (await self.store.rate_get(key))[0]

    async def get_expiry(self, key: str) -> float:
        return time.time() + (await self.store.rate_get(key))[1]

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

    async def hit(self, who: Principal, scope: Scope) -> Refused | None:
        """Count one call of `scope` against the tenant's limit and the key's own; None: go ahead."""
        tenant_limit = who.tenant.rate_limits.get(scope.value, self.defaults.get(scope.value))
        refused = await self._hit(tenant_limit, "tenant", ("t", who.name, scope.value))
        if refused is None:
            key_limit = who.key.rate_limits.get(scope.value)
            refused = await self._hit(key_limit, "key", ("k", who.name, who.key.id, scope.value))
        return refused

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
                if not await self.strategy.hit(item, *ids):
                    return await self._refusal(item, who, ids)
            except (redis.RedisError, OSError, limits.errors.StorageError) as exc:
                # Fail open: a Redis that cannot count cannot store notifications either, and the
                # route's own Redis call reports that; a limiter must not turn it into a lock-out.
                log.warning("rate limits unavailable (%s); not throttling", exc)
                return None
        return None

    async def _refusal(self, item: limits.RateLimitItem, who: str, ids: tuple[str, ...]) -> Refused:
        stats = await self.strategy.get_window_stats(item, *ids)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return Refused(str(item), who, retry)


def headers(refused: Refused) -> dict[str, Any]:
    return {"Retry-After": str(refused.retry_after_s)}
