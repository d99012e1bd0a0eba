"""The outbox provider: records the rendered message instead of sending it.

It is every channel's provider until credentials are configured, so the whole
flow works offline. It accepts a message once per attempt and only while the
notification's fence holds, in one Redis script: a stop that was answered is
never followed by an outbox message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from channels.addresses import mask
from channels.base import Message, Outcome, SendResult
from rules.model import Channel

log = logging.getLogger("parley.outbox")
OUTBOX_DUPLICATE = "the outbox already had this attempt from an earlier try: kept once"


class OutboxStore(Protocol):
    """Where outbox messages are kept: the gateway's store (gateway/state/store.py) provides it."""

    async def outbox_put(self, tenant: str, nid: str, fence: int, attempt_key: str, message: dict[str, Any]) -> str:
        """Keep `message` once per attempt while `fence` holds: "sent", "duplicate", or "stale"."""

    async def outbox_append(self, tenant: str, message: dict[str, Any]) -> None:
        """Keep a message that belongs to no notification (masked-session relays)."""


class OutboxChannel:
    def __init__(self, name: Channel, store: OutboxStore) -> None:
        self.name = name
        self.store = store

    async def send(self, message: Message) -> SendResult:
        entry = {
            "notification_id": message.notification_id,
            "attempt": message.attempt_key,
            "channel": message.channel.value,
            "address": message.address,
            "template": message.template,
            "locale": message.locale,
            "content": message.parts,
            "at": datetime.now(UTC).isoformat(),
        }
        provider_id = f"outbox:{message.notification_id}:{message.attempt_key}"
        verdict = await self.store.outbox_put(
            message.tenant, message.notification_id, message.fence, message.attempt_key, entry
        )
        if verdict == "stale":
            return SendResult(Outcome.CANCELLED, detail="notification stopped before hand-over")
        if log.isEnabledFor(logging.DEBUG):  # GET /v1/outbox shows every message; a line each was 5 % of a worker's CPU
            log.debug(
                "outbox %s %s -> %s (%s)%s", message.notification_id, message.channel,
                mask(message.channel, message.address), message.template,
                " (already recorded)" if verdict == "duplicate" else "",
            )  # fmt: skip
        if verdict == "duplicate":  # an earlier try got through before its worker could record it
            return SendResult(Outcome.DELIVERED, provider_id=provider_id, detail=OUTBOX_DUPLICATE)
        return SendResult(Outcome.DELIVERED, provider_id=provider_id)
