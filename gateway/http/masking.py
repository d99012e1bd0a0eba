"""Adding masked numbers to the API app: routes, the pool from config, and the expiry sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI

from channels.twilio.signature import TwilioHooks
from gateway.config import Settings
from gateway.http.sessions import SessionsApi
from gateway.state.audit import AuditLog
from gateway.state.store import Store
from masking.store import MaskingStore
from masking.telephony import OutboxTelephony, Telephony
from masking.voice import VoiceRelay
from rules.model import StopEvent

log = logging.getLogger("parley.masking")
SWEEP_EVERY_S = 1.0
Job = Callable[[], Coroutine[None, None, None]]


@dataclass
class Masking:
    relay: VoiceRelay  # the provider webhooks hand texts to proxy numbers to it
    startup: list[Job] = field(default_factory=list)  # run once when the app starts
    background: list[Job] = field(default_factory=list)  # run for the app's life


def install(
    app: FastAPI,
    settings: Settings,
    store: Store,
    clock: Callable[[], datetime],
    telephony: Telephony | None,
    audit: AuditLog,
) -> Masking:
    masking = MaskingStore(store.r, settings.retention)
    hooks = TwilioHooks(settings.twilio_auth_token, settings.server.public_url)

    async def responded(tenant: str, correlation_key: str, now: datetime) -> None:
        ids = await store.correlated(tenant, correlation_key)
        await store.stop_all(tenant, ids, StopEvent.RESPONDED, now, source="masked_sms")

    relay = VoiceRelay(masking, telephony or OutboxTelephony(store), hooks, clock, responded)
    app.include_router(SessionsApi(masking, settings, relay.telephony, audit, clock).router())
    app.include_router(relay.router())

    async def load_pool() -> None:
        for tenant in settings.tenants.values():
            for number in sorted(tenant.proxy_numbers):  # one by one: a number held elsewhere skips only itself
                if await masking.add_numbers(tenant.name, [number], settings.not_for_pool(tenant.name)):
                    log.error("proxy number %s of tenant %s is in use elsewhere; not added", number, tenant.name)

    async def sweep() -> None:
        while True:
            with contextlib.suppress(Exception):  # Redis briefly away: try again next round
                closed = await masking.expire_due(clock())
                if closed:
                    log.info("closed %d expired masked sessions", closed)
            await asyncio.sleep(SWEEP_EVERY_S)

    return Masking(relay, [load_pool], [sweep])
