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
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # the provider confirmed delivery
    FAILED = "failed"  # failed for good (permanent error, retries exhausted, undelivered)
    SKIPPED = "skipped"  # never attempted: no address, opted out


NOTIFICATION_TRANSITIONS: dict[NotificationStatus, frozenset[NotificationStatus]] = {
    NotificationStatus.ACTIVE: frozenset(
        {NotificationStatus.COMPLETED, NotificationStatus.STOPPED, NotificationStatus.FAILED}
    ),
    NotificationStatus.COMPLETED: frozenset(),
    NotificationStatus.STOPPED: frozenset(),
    NotificationStatus.FAILED: frozenset(),
}

DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset(
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


def can_move(current: DeliveryStatus, new: DeliveryStatus) -> bool:
    return new in DELIVERY_TRANSITIONS[current]


def can_finish(current: NotificationStatus, new: NotificationStatus) -> bool:
    return new in NOTIFICATION_TRANSITIONS[current]
