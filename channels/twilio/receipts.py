"""What Twilio's status callbacks (texts, calls, WhatsApp) mean for an attempt."""

from __future__ import annotations

from rules.model import Channel
from rules.status import DeliveryStatus

# The channels whose messages Twilio reports on through the status callback: their provider ids are
# indexed so a receipt finds its attempt (gateway/state/store.py). A new Twilio channel adds itself here.
RECEIPT_CHANNELS = frozenset({Channel.SMS, Channel.CALL, Channel.WHATSAPP})

# Twilio's MessageStatus / CallStatus values -> our delivery status (None: nothing to record)
TWILIO_STATUS: dict[str, DeliveryStatus | None] = {
    "accepted": None, "scheduled": None, "queued": None, "sending": None, "initiated": None, "ringing": None,
    "in-progress": None, "sent": DeliveryStatus.SENT, "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED, "completed": DeliveryStatus.DELIVERED, "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED, "busy": DeliveryStatus.FAILED, "no-answer": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}  # fmt: skip
