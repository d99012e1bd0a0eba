"""Masked sessions: two participants who reach each other through proxy numbers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from rules.durations import parse_duration
from rules.intent import Locale, Phone

Text = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_TTL = timedelta(days=90)  # a proxy number stays held for the whole session: no session may hold one for years
DURATION = r"^(?:[0-9]+[smhd])+$"


def _ttl(value: str) -> str:
    if not re.fullmatch(DURATION, value):  # parse_duration alone would trim spaces and take any Unicode digit
        raise ValueError(
            f"invalid duration {value!r} (expected a number and a unit s, m, h or d, e.g. 30s, 15m, 1h, 2d)"
        )
    try:
        too_long = parse_duration(value) > MAX_TTL  # ValueError for 0s
    except OverflowError:  # more days than a timedelta holds
        too_long = True
    if too_long:
        raise ValueError(f"a session lives at most 90 days (90d); {value!r} is longer")
    return value


# The pattern is the schema's; the validator says what is wrong in words (parse_duration's message).
Ttl = Annotated[
    str, StringConstraints(max_length=16), AfterValidator(_ttl), Field(json_schema_extra={"pattern": DURATION})
]


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    EXPIRED = "expired"


class ParticipantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Text
    phone: Phone
    locale: Locale = "en"


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "participants": [{"id": "buyer-7", "phone": "+14155550199"},
                         {"id": "seller-42", "phone": "+4915112345678", "locale": "de"}],
        "ttl": "72h", "correlation_key": "conversation:123", "record": False}]})  # fmt: skip

    participants: Annotated[list[ParticipantIn], Field(min_length=2, max_length=2)]
    ttl: Ttl = "72h"
    correlation_key: Text | None = None
    record: StrictBool = False  # not "yes" or 1: the schema says boolean


class Participant(BaseModel):
    id: str
    phone: str  # real number: stays in Redis and in TwiML to Twilio, never in API bodies or logs
    proxy: str  # the number this participant calls and sees the other one as
    locale: str = "en"


class Session(BaseModel):
    id: str
    tenant: str
    participants: tuple[Participant, Participant]
    created_at: datetime
    expires_at: datetime
    status: SessionStatus = SessionStatus.OPEN
    correlation_key: str | None = None
    record: bool = False

    def other(self, participant_id: str) -> Participant:
        first, second = self.participants
        return second if first.id == participant_id else first

    def by_phone(self, phone: str) -> Participant | None:
        return next((p for p in self.participants if p.phone == phone), None)

    def by_id(self, participant_id: str) -> Participant | None:
        return next((p for p in self.participants if p.id == participant_id), None)

    def is_open(self, now: datetime) -> bool:
        return self.status is SessionStatus.OPEN and now < self.expires_at


class Interaction(BaseModel):
    """One call or message on a session, as the tenant may read it (ids and proxies only)."""

    kind: str  # "call" | "sms" | "agent_call"
    direction: str  # "<participant id> -> <participant id>"
    status: str
    at: datetime
    provider_id: str | None = None
    duration_s: int | None = None
    recording_url: str | None = None
