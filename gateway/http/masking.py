"""Adding masked numbers to the API app: routes, the pool from config, and the expiry sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from gateway.config import Settings
from gateway.http import sessions as api
from gateway.state.store import Store
from masking import voice
from masking.store import MaskingStore
from masking.telephony import OutboxTelephony, Telephony

log = logging.getLogger("parley.masking")
SWEEP_EVERY_S = 1.0


def install(
    app: FastAPI, settings: Settings, store: Store, clock: Callable[[], datetime], telephony: Telephony | None
) -> None:
    masking = MaskingStore(store.r, settings.retention)
    app.state.masking = masking
    app.state.telephony = telephony or OutboxTelephony(store)
    app.include_router(api.router)
    app.include_router(voice.router)

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

    app.state.startup.append(load_pool)
    app.state.background.append(sweep)
