"""Notification and delivery status: string enums and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class NotificationStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"  # every step ran; at least one message got through
    STOPPED = "stopped"  # a response (or cancel) ended it
    FAILED = "failed"  # every step ran and nothing got through


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # decided, not yet accepted by a provider
    # A worker handed it to the provider, or was about to, and was interrupted (a crash, a lost lease)
    # before it could record the answer: the provider may have it. It is sent again at once (a second
    # try, shown in the delivery's history), so the recipient may get it twice (docs/reliability.md).
    UNKNOWN = "unknown"
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # the provider confirmed delivery
    FAILED = "failed"  # failed for good (permanent error, retries exhausted, undelivered)
    SKIPPED = "skipped"  # never attempted: no address, opted out


# A notification moves only from active to one final status (completed, stopped, failed); the state
# store's scripts refuse every write to a notification that is no longer active.
DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset(
        {
            DeliveryStatus.UNKNOWN,
            DeliveryStatus.SENT,
            DeliveryStatus.DELIVERED,
            DeliveryStatus.FAILED,
            DeliveryStatus.SKIPPED,
        }
    ),
    DeliveryStatus.UNKNOWN: frozenset(
        {DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED}
    ),
    # A receipt can still turn an accepted message into a failure (undelivered).
    DeliveryStatus.SENT: frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}),
    DeliveryStatus.DELIVERED: frozenset(),
    DeliveryStatus.FAILED: frozenset(),
    DeliveryStatus.SKIPPED: frozenset(),
}

SUCCEEDED = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED})
UNSUCCESSFUL = frozenset({DeliveryStatus.FAILED, DeliveryStatus.SKIPPED})
IN_FLIGHT = frozenset({DeliveryStatus.PENDING, DeliveryStatus.UNKNOWN})  # not settled: a send is still owed


def can_move(current: DeliveryStatus, new: DeliveryStatus) -> bool:
    return new in DELIVERY_TRANSITIONS[current]


def refused_from(new: DeliveryStatus) -> frozenset[DeliveryStatus]:
    """The statuses an attempt may not leave for `new`: what the state store's RECORD script is given,
    so a worker's late `sent` never overwrites a receipt's `delivered` or `failed`."""
    return _REFUSED_FROM[new]


_REFUSED_FROM = {
    new: frozenset(s for s in DeliveryStatus if s is not new and new not in DELIVERY_TRANSITIONS[s])
    for new in DeliveryStatus
}
