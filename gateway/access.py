"""Who is calling: API keys, their roles and expiry, and the principal a request acts as.

A key belongs to one tenant and carries roles; a route names the role it needs. Keys are looked
up by their SHA-256 (they are long random strings, not passwords: a slow hash such as argon2
would cost milliseconds on every request and buys nothing against a 128-bit secret), so the
configuration never holds a key itself. The table of keys can be swapped while the process runs
(`KeyRing`), which is how keys are rotated without a restart (docs/security.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    """What a key may do. A route needs exactly one of these (docs/security.md has the table)."""

    INGEST = "ingest"  # POST /v1/notifications
    EVENTS = "events"  # stop events: POST /v1/notifications/{id}/events, POST /v1/events
    MASKING = "masking"  # the number pool and masked sessions
    CALLS = "calls"  # click-to-call (POST /v1/calls)
    READ = "read"  # reading notifications, the outbox, sessions, template previews
    ADMIN = "admin"  # the tenant's audit log; on an operator tenant, reloading the rules


# A key written without `roles` keeps what every key could do before roles existed.
DEFAULT_ROLES = frozenset({Role.INGEST, Role.EVENTS, Role.MASKING, Role.CALLS, Role.READ})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str  # names the key in the audit log and in logs; never the key itself
    digest: str  # SHA-256 of the key
    roles: frozenset[Role]
    expires: datetime | None = None
    rate_limits: Mapping[str, str] = field(default_factory=dict)  # scope -> limit, for this key alone

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True)
class Tenant:
    name: str
    keys: tuple[ApiKey, ...]
    admin: bool  # an operator tenant: its admin keys may reload the rules, which are shared by all
    numbers: frozenset[str] = frozenset()
    proxy_numbers: frozenset[str] = frozenset()
    rate_limits: Mapping[str, str] = field(default_factory=dict)  # scope -> limit, for all its keys

    @property
    def key_hashes(self) -> frozenset[str]:
        return frozenset(k.digest for k in self.keys)


@dataclass(frozen=True)
class Principal:
    """The tenant and key a request acts as."""

    tenant: Tenant
    key: ApiKey

    @property
    def name(self) -> str:
        return self.tenant.name

    @property
    def admin(self) -> bool:
        return self.tenant.admin

    def may(self, role: Role) -> bool:
        return role in self.key.roles


class KeyRing:
    """Every tenant's keys, by digest. Replaced whole on a reload, never edited in place."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self.tenants = {t.name: t for t in tenants}
        self._by_digest = {k.digest: (t, k) for t in self.tenants.values() for k in t.keys}

    def find(self, key: str) -> Principal | None:
        # A dict lookup by the key's digest: timing can tell at most which digests exist, never a key.
        found = self._by_digest.get(hash_key(key))
        return Principal(*found) if found is not None else None
