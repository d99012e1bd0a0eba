"""A notification intent: what a marketplace backend POSTs, and what `parley simulate` reads."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo

from rules.model import Channel

TRUSTED = {"trusted": True}
"""Validation context for an intent Parley stored itself (validated when it was created): loading it skips
the phone number and timezone checks, which cost more than the rest of the model together."""


def _trusted(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("trusted") is True


def _phone(value: str, info: ValidationInfo) -> str:
    return value if _trusted(info) else _e164(value)


@lru_cache(maxsize=4096)  # parsing a number is slow and the same ones come back; errors are not cached
def _e164(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number in E.164 form (+<country><number>): {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number (E.164, e.g. +14155550123)")
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != value:
        raise ValueError(f"phone numbers must be in E.164 form, e.g. {formatted}")
    return value


def _timezone(value: str, info: ValidationInfo) -> str:
    if _trusted(info):
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (expected an IANA name such as Europe/Berlin)") from None
    return value


Phone = Annotated[str, AfterValidator(_phone)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Person(BaseModel):
    """A marketplace user. Only `id` is required; each address enables one channel."""

    model_config = ConfigDict(extra="forbid")

    id: Text
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)] | None = None
    phone: Phone | None = None
    push_tokens: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]], Field(max_length=20)
    ] = []
    slack: Text | None = None
    locale: Locale = "en"
    timezone: TimeZoneName | None = None

    def address(self, channel: Channel) -> str | None:
        """The address this person has for a channel, or None (the engine's `no_address`)."""
        if channel is Channel.EMAIL:
            return self.email
        if channel in (Channel.SMS, Channel.CALL):
            return self.phone
        if channel is Channel.PUSH:
            return self.push_tokens[0] if self.push_tokens else None
        return self.slack


class Intent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    recipient: Person
    counterpart: Person | None = None
    data: dict[str, Any] = {}
    policy: Text | None = None
    correlation_key: Text | None = None

    def match_fields(self) -> dict[str, Any]:
        """The fields a policy's `match.where` may test, as plain data."""
        return self.model_dump(mode="json")
