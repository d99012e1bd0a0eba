"""Phone numbers: the one place that decides what a valid number is.

Two checks, each used everywhere it applies:
- a person's number (intents, rules files' destinations, masked-session participants) must be a valid
  number written in E.164 (`e164`, phonenumbers' metadata): a typo is caught before anything is sent;
- a number of ours (tenants' reply numbers, proxy pools, provider senders: `OwnNumber`) and the address
  an adapter is about to call must have E.164's shape (`SHAPE`): the provider decides whether it works,
  and its test numbers (+15550100...) are not in phonenumbers' metadata.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Annotated

import phonenumbers
from pydantic import Field

EXAMPLE = "+14155550123"
SHAPE = re.compile(r"^\+[1-9][0-9]{6,14}$")
OwnNumber = Annotated[str, Field(pattern=SHAPE.pattern)]


@functools.lru_cache(maxsize=4096)  # parsing a number is slow and the same ones come back; errors are not cached
def e164(value: str) -> str:
    """`value` when it is a valid number written in E.164; otherwise ValueError saying what is wrong."""
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number in E.164 form (+<country><number>): {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"not a valid phone number (E.164, e.g. {EXAMPLE})")
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != value:
        raise ValueError(f"phone numbers must be in E.164 form, e.g. {formatted}")
    return value


def is_e164(value: str) -> bool:
    try:
        e164(value)
    except ValueError:
        return False
    return True


def country_of(number: str) -> str:
    """ISO country of an E.164 number ("DE"), or "" when it cannot be told."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or ""
    except phonenumbers.NumberParseException:
        return ""


@functools.lru_cache(maxsize=4096)  # the same numbers come back (replies, stops, every intent's index)
def digest(phone: str) -> str:
    """What a Redis key name holds instead of a number: real numbers never appear in key names."""
    return hashlib.sha256(phone.encode()).hexdigest()[:24]
