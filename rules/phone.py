"""Phone numbers: the one place that decides what a valid number is (E.164, checked by phonenumbers).

Intents, rules files, provider settings, masking pools and the adapters all ask here, so a number one
of them accepts is never refused by another.
"""

from __future__ import annotations

import functools
import hashlib

import phonenumbers

EXAMPLE = "+14155550123"


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
