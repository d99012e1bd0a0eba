"""How an email address is shown in the API and logs."""

from __future__ import annotations


def mask(address: str) -> str:
    """`s***@example.com`: the domain tells a bounce's cause, the user part is hidden."""
    user, at, domain = address.partition("@")
    return f"{user[:1]}***@{domain}" if at else "***"
