"""What every provider's inbound webhook shares: the refusal of a bad signature, and the URL signed."""

from __future__ import annotations

from fastapi import Request


class Forbidden(Exception):
    """A webhook whose signature does not check out."""


def public_url(request: Request, base: str | None) -> str:
    """The URL the provider signed: `base` (server.public_url) with this request's path and query, or
    without it the URL the request arrived on. Never X-Forwarded-Host/Proto: any client can send
    those, and a signature a provider made for another site's URL must not pass here."""
    if base:
        query = f"?{request.url.query}" if request.url.query else ""
        return base.rstrip("/") + request.url.path + query
    return str(request.url)
