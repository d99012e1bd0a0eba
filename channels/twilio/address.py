"""How a phone number is shown in the API and logs (texts, calls, WhatsApp)."""

from __future__ import annotations


def mask(address: str) -> str:
    """`+491*******78`: the country and the last two digits, enough to tell two numbers apart."""
    return address[:4] + "*" * max(len(address) - 6, 0) + address[-2:]
