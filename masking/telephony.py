"""Placing calls and relaying texts for masked sessions: Twilio, or the outbox when not configured."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Protocol

from channels.addresses import mask
from channels.base import Outcome, SendResult
from channels.outbox.channel import OutboxStore
from channels.twilio.client import Twilio
from rules.model import Channel

log = logging.getLogger("parley.masking")


class Telephony(Protocol):
    async def call(self, *, tenant: str, from_: str, to: str, url: str, status_callback: str) -> SendResult: ...

    async def message(self, *, tenant: str, from_: str, to: str, body: str) -> SendResult: ...


class TwilioTelephony:
    """Twilio's REST API through the SMS/voice adapters' client (errors classified there)."""

    def __init__(self, twilio: Twilio) -> None:
        self.twilio = twilio

    async def call(self, *, tenant: str, from_: str, to: str, url: str, status_callback: str) -> SendResult:
        return await self.twilio.create(
            lambda c: c.calls.create(to=to, from_=from_, url=url, status_callback=status_callback)
        )

    async def message(self, *, tenant: str, from_: str, to: str, body: str) -> SendResult:
        return await self.twilio.create(lambda c: c.messages.create(to=to, from_=from_, body=body))


class OutboxTelephony:
    """Without Twilio credentials, relayed texts and placed calls are recorded in the tenant's outbox."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store

    async def call(self, *, tenant: str, from_: str, to: str, url: str, status_callback: str) -> SendResult:
        return await self._put(tenant, Channel.CALL, from_, to, {"url": url})

    async def message(self, *, tenant: str, from_: str, to: str, body: str) -> SendResult:
        return await self._put(tenant, Channel.SMS, from_, to, {"body": body})

    async def _put(self, tenant: str, channel: Channel, from_: str, to: str, content: dict[str, str]) -> SendResult:
        now = datetime.now(UTC)
        provider_id = f"outbox:masking:{now.timestamp():.6f}"
        entry = {"notification_id": None, "attempt": None, "channel": channel.value, "address": to, "from": from_,
                 "template": None, "locale": None, "content": content, "at": now.isoformat()}  # fmt: skip
        await self.store.outbox_append(tenant, entry)
        log.info("masking %s via outbox from %s to %s", channel, from_, mask(channel, to))
        return SendResult(Outcome.ACCEPTED, provider_id=provider_id)
