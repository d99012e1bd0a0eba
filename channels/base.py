"""The one interface every channel adapter implements, and what a send returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from rules.model import Channel as ChannelName


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # the provider took it (a receipt may follow)
    DELIVERED = "delivered"  # the provider confirmed delivery
    TRANSIENT = "transient"  # try again later (timeouts, 429, 5xx, 4xx SMTP)
    PERMANENT = "permanent"  # will not work for this address; the fallback takes over
    CANCELLED = "cancelled"  # the notification stopped before the message was handed over


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_id: str | None = None
    detail: str | None = None
    retry_after: float | None = None  # seconds, when the provider said so (429 Retry-After)


@dataclass(frozen=True)
class Message:
    """A rendered message for one address. `fence` lets a provider refuse a stopped notification."""

    tenant: str
    notification_id: str
    attempt_key: str
    fence: int
    channel: ChannelName
    address: str
    template: str
    locale: str
    parts: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    """A channel adapter. `send` never raises for provider errors: it classifies them."""

    name: ChannelName

    async def send(self, message: Message) -> SendResult: ...
