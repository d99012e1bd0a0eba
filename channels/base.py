"""The one interface every channel adapter implements, and what a send returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
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
    notification ends; None when no lease bounds the send. `still_ours`, asked at the moment of
    hand-over, says whether the notification is still running under the sending worker's fence
    (a stop acknowledged since the claim moved it), and if so marks the hand-over, which a stop
    then waits for before it is acknowledged; None when nothing can stop the send.
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
    still_ours: Callable[[], Awaitable[bool]] | None = None


LEASE_ENDING = SendResult(Outcome.CANCELLED, detail="lease ending: not handed to the provider")
STOPPED_BEFORE = SendResult(Outcome.CANCELLED, detail="stopped before hand-over: not handed to the provider")
UNCHECKED = SendResult(Outcome.CANCELLED, detail="Redis unavailable at hand-over: not handed to the provider")


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


async def hold_back(message: Message, call_timeout: float) -> SendResult | None:
    """Asked by an adapter at the moment its provider call would start (after waiting for an SMTP
    session or a thread): why not to start it (the lease could end during it; the notification was
    stopped, or taken over, since the attempt was claimed), or None to go ahead. A stop acknowledged
    while the message waited for a session is then never followed by the send (the outbox checks the
    same in its script). The window that remains is the provider call itself."""
    if too_late(message.deadline, call_timeout):
        return LEASE_ENDING
    if message.still_ours is None:
        return None
    try:
        ours = await message.still_ours()
    except Exception:
        return UNCHECKED
    return None if ours else STOPPED_BEFORE


def hold_back_in_thread(message: Message, call_timeout: float, loop: asyncio.AbstractEventLoop) -> SendResult | None:
    """`hold_back` from a provider SDK's worker thread, on the sending worker's event loop (the loop is
    free meanwhile: the send awaits the thread)."""
    return asyncio.run_coroutine_threadsafe(hold_back(message, call_timeout), loop).result()
