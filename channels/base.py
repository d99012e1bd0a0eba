"""The one interface every channel adapter implements, and what a send returns."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from rules.model import Channel


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # the provider took it (a receipt may follow)
    DELIVERED = "delivered"  # the provider confirmed delivery
    TRANSIENT = "transient"  # try again later (timeouts, 429, 5xx, 4xx SMTP)
    PERMANENT = "permanent"  # will not work for this address; the fallback takes over
    CANCELLED = "cancelled"  # not handed over: the notification stopped, or the worker's lease is ending


class Reason(StrEnum):
    """Why a send failed, when a caller may act on it beyond retry/fallback (docs/channels.md).

    A result with a reason has a `detail` that starts with it ("opted_out: twilio 21610 ..."),
    so the reason survives where only the detail is recorded (a delivery's `error`).
    """

    OPTED_OUT = "opted_out"  # the recipient unsubscribed from this sender (SMS STOP): do not retry
    ADDRESS_INVALID = "address_invalid"  # the address cannot receive this channel (bad number, no such user)
    TOKEN_INVALID = "token_invalid"  # a push token the app should forget


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_id: str | None = None
    detail: str | None = None
    retry_after: float | None = None  # seconds, when the provider said so (429 Retry-After)
    reason: Reason | None = None

    @classmethod
    def failed(
        cls, outcome: Outcome, detail: str, reason: Reason | None = None, retry_after: float | None = None
    ) -> SendResult:
        """A failure whose detail starts with its reason, when it has one."""
        text = f"{reason.value}: {detail}" if reason else detail
        return cls(outcome, detail=text, retry_after=retry_after, reason=reason)


@dataclass(frozen=True)
class Message:
    """A rendered message for one address. `fence` lets a provider refuse a stopped notification.

    `deadline` (a `time.monotonic()` value) is when the sending worker's lease on the
    notification ends; None when no lease bounds the send.
    """

    tenant: str
    notification_id: str
    attempt_key: str
    fence: int
    channel: Channel
    address: str
    template: str
    locale: str
    parts: dict[str, str] = field(default_factory=dict)
    deadline: float | None = None


LEASE_ENDING = SendResult(Outcome.CANCELLED, detail="lease ending: not handed to the provider")


def too_late(deadline: float | None, call_timeout: float) -> bool:
    """Whether a provider call starting now could still run when the lease (`Message.deadline`) ends.

    Then another worker may perform the same attempt, and a provider with no idempotency
    key would deliver it twice; so the adapter does not start the call, and the attempt
    stays pending for the next lease. Adapters ask at the moment the call would start:
    after waiting for an SMTP session or a thread, which a burst can make long.
    """
    return deadline is not None and time.monotonic() + call_timeout >= deadline


class Adapter(Protocol):
    """A channel adapter. `send` never raises for provider errors: it classifies them."""

    name: Channel

    async def send(self, message: Message) -> SendResult: ...
