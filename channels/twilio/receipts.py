"""What Twilio's status callbacks (texts, calls, WhatsApp) mean for an attempt."""

from __future__ import annotations

from rules.status import DeliveryStatus

# Twilio's MessageStatus / CallStatus values -> our delivery status (None: nothing to record)
TWILIO_STATUS: dict[str, DeliveryStatus | None] = {
    "accepted": None, "scheduled": None, "queued": None, "sending": None, "initiated": None, "ringing": None,
    "in-progress": None, "sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED, "completed": DeliveryStatus.DELIVERED, "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED, "busy": DeliveryStatus.FAILED, "no-answer": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}  # fmt: skip
