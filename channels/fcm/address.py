"""How a push token is shown in the API and logs."""

from __future__ import annotations


def mask(address: str) -> str:
    """The token's last six characters: a token is a credential to reach a device."""
    return f"token …{address[-6:]}"
