"""Authenticating a request: the key, its role for the route, its rate limits, and failed-key throttling.

Every /v1 route takes one of the dependencies below (`Ingest`, `Reader`, ...), which names the role
it needs and the rate-limit scope it counts against. The order matters: an address that failed too
often is refused before its key is even looked at; a valid key without the role is 403; a key over
its limits is 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Request

from gateway.access import KeyRing, Principal, Role
from gateway.config import Settings, load_settings
from gateway.http.errors import ApiError
from gateway.http.ratelimit import RateLimiter, Refused, Scope, headers
from gateway.rulesets import RELOAD_TIME_LIMIT_S
from rules.problems import Problem, RulesError

UNAUTHORIZED = "send Authorization: Bearer <API key>"


@dataclass
class Access:
    """The keys in force (swapped on a reload) and the shared rate limiter."""

    settings: Settings
    keyring: KeyRing
    limiter: RateLimiter

    async def reload_keys(self, timeout: float = RELOAD_TIME_LIMIT_S) -> list[Problem]:
        """Re-read the tenants' keys from the config file, off the event loop (it may hold the rules
        inline, and YAML is slow to parse); on any problem, or past `timeout`, keep the keys in force."""
        try:
            loaded = await asyncio.wait_for(asyncio.to_thread(self._load_keys), timeout)
        except TimeoutError:
            return [self._problem(f"keys: took longer than {timeout:g} s; the keys in force are kept")]
        if isinstance(loaded, KeyRing):
            self.keyring = loaded  # swapped here, on the loop, and only by a load that finished in time
            return []
        return loaded

    def _load_keys(self) -> KeyRing | list[Problem]:
        try:
            fresh = load_settings(self.settings.path, dev_key=self.settings.dev_key, env=dict(self.settings.environ))
        except RulesError as exc:
            return exc.problems
        except OSError as exc:
            return [self._problem(f"cannot read: {exc.strerror}")]
        return KeyRing(fresh.tenants.values())

    def _problem(self, message: str) -> Problem:
        return Problem(1, 1, "(document)", message, str(self.settings.path))


def client_address(request: Request) -> str:
    # uvicorn puts the peer here, or the X-Forwarded-For client when the peer is a trusted proxy
    # (--forwarded-allow-ips / FORWARDED_ALLOW_IPS; by default only 127.0.0.1 is trusted).
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, authorization: str | None, now: datetime) -> Principal:
    access: Access = request.app.state.access
    address = client_address(request)
    blocked = access.limiter.blocked(address) if access.limiter.blocking else None
    if blocked is not None:  # checked before the key: a blocked address learns nothing of it
        raise _throttled(blocked)
    scheme, _, key = (authorization or "").partition(" ")
    found = access.keyring.find(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    message = UNAUTHORIZED
    if found is not None and found.key.expired(now):
        found, message = None, "this API key has expired; use its replacement"
    if found is None:
        refused = await access.limiter.failed(address)
        if refused is not None:
            raise _throttled(refused)
        raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
    return found


def _throttled(refused: Refused) -> ApiError:
    return ApiError(429, "rate_limited", f"too many failed authentications from this address; retry in "
                    f"{refused.retry_after_s} s", headers=headers(refused))  # fmt: skip


async def authorize(request: Request, authorization: str | None, role: Role, scope: Scope) -> Principal:
    who = await authenticate(request, authorization, request.app.state.clock())
    if not who.may(role):
        raise ApiError(403, "forbidden", f"this API key does not have the {role.value!r} role")
    refused = await request.app.state.access.limiter.hit(who, scope)
    if refused is not None:
        raise ApiError(429, "rate_limited", f"over the {refused.who}'s {scope.value} limit of {refused.limit}; "
                       f"retry in {refused.retry_after_s} s", headers=headers(refused))  # fmt: skip
    return who


def _guard(role: Role, scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
        return await authorize(request, authorization, role, scope)

    return dependency


Ingest = Annotated[Principal, Depends(_guard(Role.INGEST, Scope.INGEST))]
Events = Annotated[Principal, Depends(_guard(Role.EVENTS, Scope.EVENTS))]
Reader = Annotated[Principal, Depends(_guard(Role.READ, Scope.READ))]
Previewer = Annotated[Principal, Depends(_guard(Role.READ, Scope.PREVIEWS))]
Masker = Annotated[Principal, Depends(_guard(Role.MASKING, Scope.MASKING))]
Caller = Annotated[Principal, Depends(_guard(Role.CALLS, Scope.CALLS))]
Admin = Annotated[Principal, Depends(_guard(Role.ADMIN, Scope.ADMIN))]
