"""What the store keeps for a notification, and how it maps to the engine's state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from channels.twilio import receipts as twilio_receipts
from rules.durations import from_ms, to_ms
from rules.engine import AttemptReason, Event, Kind, Planned, State
from rules.intent import TRUSTED, Intent
from rules.model import RECIPIENT, Channel, StopEvent
from rules.status import DeliveryStatus, NotificationStatus

# Channels whose provider sends receipts, declared by each provider's folder: only their provider ids are
# indexed for the webhooks to find the attempt. FCM, SMTP and Slack send none; an index entry per push
# or email was ~136 bytes of every active notification.
RECEIPTS = twilio_receipts.RECEIPT_CHANNELS


class TryOutcome(StrEnum):
    """What one try of an attempt came to, as its history shows it."""

    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"  # the provider confirmed delivery (or posted it: Slack, the outbox)
    TRANSIENT = "transient"  # failed, worth another try
    PERMANENT = "permanent"  # failed for good
    UNKNOWN = "unknown"  # interrupted before the provider's answer was recorded: it may have got it


class Try(BaseModel):
    """One hand-over (or possible hand-over) of an attempt to its provider. Stored with one-letter
    names and the time in epoch ms: ~35 bytes a try instead of ~70, in every attempt of every
    active notification (python -m bench, footprint)."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, serialize_by_alias=True)

    at_ms: int = Field(alias="t")
    outcome: TryOutcome = Field(alias="o")
    detail: str | None = Field(default=None, alias="d")

    @classmethod
    def of(cls, at: datetime, outcome: TryOutcome, detail: str | None = None) -> Try:
        return cls(at_ms=to_ms(at), outcome=outcome, detail=detail)

    @property
    def at(self) -> datetime:
        return from_ms(self.at_ms)


class Delivery(BaseModel):
    """One attempt on one channel, as the API shows it (the address masked)."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, serialize_by_alias=True)

    key: str = ""  # stored as the hash field's name (a:<key>), not repeated in the JSON: see from_stored
    step: int
    run: int
    kind: Kind = Kind.SEND
    channel: Channel
    target: str = RECIPIENT
    template: str
    status: DeliveryStatus
    at: datetime
    updated_at: datetime
    primary: bool = True
    reason: AttemptReason | None = None
    fallback_for: Channel | None = None
    bridge: str | None = None
    address: str | None = None  # masked
    provider_id: str | None = None
    error: str | None = None
    tries: int = 0
    history: list[Try] = Field(
        default=[], alias="h"
    )  # every try, oldest first (`tries` of them): a re-send is never hidden
    retry_at: datetime | None = None
    claim: int  # the fence token of the worker that claimed it (no default: always stored)
    encoding: str | None = None  # SMS: GSM-7 or UCS-2, as rendered
    segments: int | None = None  # SMS: how many segments the body takes

    @classmethod
    def planned(cls, action: Planned, now: datetime, claim: int, address: str | None) -> Delivery:
        skipped = action.kind is Kind.SKIP
        # Built from the engine's typed values: nothing to validate. A copy of a blank attempt with every
        # field given, not model_construct, which walks the fields one by one: half the CPU.
        return _BLANK.model_copy(update={
            "key": action.key, "step": action.step, "run": action.run, "kind": action.kind,
            "channel": action.channel, "target": action.target, "template": action.template,
            "status": DeliveryStatus.SKIPPED if skipped else DeliveryStatus.PENDING,
            "at": now, "updated_at": now, "primary": action.primary, "reason": action.why,
            "fallback_for": action.fallback_for, "bridge": action.bridge, "address": address, "claim": claim,
        })  # fmt: skip

    @classmethod
    def from_stored(cls, key: str, raw: str) -> Delivery:
        delivery = cls.model_validate_json(raw)
        delivery.key = key
        return delivery

    def stored(self) -> str:
        """The JSON an attempt is stored as: without its key and without fields at their defaults (most
        attempts are primary sends to the recipient), about 130 bytes less per active notification
        (python -m bench, footprint). `claim` and `status`, which the scripts read, have no default.
        The same JSON as exclude_defaults=True, at two thirds of its CPU: every other default is None."""
        exclude = {"key"} | {name for name, default in _SET_DEFAULTS if getattr(self, name) == default}
        return self.model_dump_json(exclude_none=True, exclude=exclude)


_BLANK = Delivery.model_construct(
    step=0, run=0, channel=Channel.EMAIL, template="", status=DeliveryStatus.PENDING,
    at=datetime.min.replace(tzinfo=UTC), updated_at=datetime.min.replace(tzinfo=UTC), claim=0,
)  # fmt: skip
_SET_DEFAULTS = tuple(
    (name, field.default)
    for name, field in Delivery.model_fields.items()
    if field.default not in (None, PydanticUndefined)
)


@dataclass(slots=True)
class Stored:
    """A notification as loaded: built from the hash the store wrote, so not validated again."""

    id: str
    tenant: str
    status: NotificationStatus
    token: int
    policy: str
    version: str
    intent: Intent
    created_at: datetime
    started_at: datetime
    correlation_key: str | None
    deliveries: dict[str, Delivery]
    events: list[Event]
    final_at: datetime | None
    final_reason: str | None
    due_ms: int | None

    def state(self) -> State:
        return State(
            started_at=self.started_at,
            attempts=tuple(self.deliveries.values()),  # the records themselves (rules.engine.Recorded)
            events=tuple(self.events),
        )

    @classmethod
    def from_hash(cls, nid: str, raw: dict[str, str]) -> Stored:
        deliveries: dict[str, Delivery] = {}
        logged: list[tuple[int, str]] = []
        for k, v in raw.items():
            if k[1:2] == ":":  # attempts (a:<key>) and events (e:<n>); the other fields have longer names
                if k[0] == "a":
                    deliveries[k[2:]] = Delivery.from_stored(k[2:], v)
                elif k[0] == "e":
                    logged.append((int(k[2:]), v))
        logged.sort()  # in order of n
        events = [_event(json.loads(v)) for _, v in logged]
        created = from_ms(int(raw["created_ms"]))
        return cls(
            id=nid, tenant=raw["tenant"], status=NotificationStatus(raw["status"]), token=int(raw.get("token", 0)),
            policy=raw["policy"], version=raw["version"], intent=Intent.model_validate_json(raw["intent"], context=TRUSTED),  # ours, validated on creation
            created_at=created, started_at=created,
            correlation_key=raw.get("corr") or None, deliveries=deliveries, events=events,
            final_at=datetime.fromisoformat(raw["final_at"]) if raw.get("final_at") else None,
            final_reason=raw.get("final_reason") or None, due_ms=int(raw["due"]) if raw.get("due") else None,
        )  # fmt: skip


def _event(raw: dict[str, Any]) -> Event:
    return Event(type=StopEvent(raw["type"]), at=datetime.fromisoformat(raw["at"]))


def iso(moment: datetime) -> str:
    """API times: UTC, always with milliseconds, so they also sort as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_entry(at: datetime, message: str, **extra: Any) -> dict[str, Any]:
    return {"at": at.isoformat(), "message": message, **extra}
