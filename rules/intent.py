"""A notification intent: what a marketplace backend POSTs, and what `parley simulate` reads."""

from __future__ import annotations

from typing import Annotated, Any, assert_never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationInfo

from rules.model import Channel
from rules.phone import e164

TRUSTED = {"trusted": True}
"""Validation context for an intent Parley stored itself (validated when it was created): loading it skips
the phone number and timezone checks, which cost more than the rest of the model together."""


def _trusted(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("trusted") is True


def _phone(value: str, info: ValidationInfo) -> str:
    return value if _trusted(info) else e164(value)


def _timezone(value: str, info: ValidationInfo) -> str:
    if _trusted(info):
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of tzdata ("America"), too long
        raise ValueError(f"unknown timezone {value!r} (expected an IANA name such as Europe/Berlin)") from None
    return value


def _data(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    if not _trusted(info) and _deeper_than(value, MAX_DATA_DEPTH):
        raise ValueError(f"nested more than {MAX_DATA_DEPTH} levels deep (each object or list is a level)")
    return value


def _deeper_than(value: dict[str, Any], limit: int) -> bool:
    """Whether objects and lists nest more than `limit` levels (`value` is the first). A loop, not recursion:
    a body may nest as deep as the parser allows."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


# The bounds are documented in docs/api.md and shown in the OpenAPI schema: E.164 has at most 15 digits
# (32 leaves room for a formatted number, so its message can show the E.164 form); the longest IANA zone
# name has 32 characters; 35 is the length BCP 47 asks implementations to support for a language tag.
MAX_DATA_DEPTH = 10
Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(_phone)]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]
Locale = Annotated[str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Data = Annotated[
    dict[str, Any],
    AfterValidator(_data),
    Field(description=f"free-form; at most {MAX_DATA_DEPTH} levels deep, and the body at most "
                      "server.max_body_bytes", json_schema_extra={"x-max-depth": MAX_DATA_DEPTH}),
]  # fmt: skip


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
    whatsapp: Phone | None = None  # E.164 like `phone`; only this enables `whatsapp` (never `phone`)
    locale: Locale = "en"
    timezone: TimeZoneName | None = None

    def address(self, channel: Channel) -> str | None:
        """The address this person has for a channel, or None (the engine's `no_address`)."""
        # Exhaustive (mypy checks the assert_never): a new channel without its address here is a type
        # error and, at run time, an error, never a send to another channel's address.
        match channel:
            case Channel.EMAIL:
                return self.email
            case Channel.SMS | Channel.CALL:
                return self.phone
            case Channel.PUSH:
                return self.push_tokens[0] if self.push_tokens else None
            case Channel.SLACK:
                return self.slack
            case Channel.WHATSAPP:  # not `phone`: a number that takes texts need not be on WhatsApp
                return self.whatsapp
            case _:
                assert_never(channel)


EXAMPLE: dict[str, JsonValue] = {
    "event": "inquiry.created",
    "recipient": {"id": "seller-42", "email": "seller@example.com", "phone": "+14155550123", "timezone": "Europe/Berlin"},
    "counterpart": {"id": "buyer-7", "phone": "+14155550199"},
    "correlation_key": "inquiry-1001",
    "data": {"listing": "Red bike", "message": "Is it still available?"},
}  # fmt: skip


class Intent(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})  # /docs shows it

    event: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    recipient: Person
    counterpart: Person | None = None
    data: Data = {}
    policy: Text | None = None
    correlation_key: Text | None = None

    def match_fields(self) -> dict[str, Any]:
        """The fields a policy's `match.where` may test, as plain data."""
        return self.model_dump(mode="json")
