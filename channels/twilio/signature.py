"""Checking Twilio's X-Twilio-Signature on its webhooks (status callbacks, inbound texts and calls)."""

from __future__ import annotations

from fastapi import Request
from twilio.request_validator import RequestValidator

from channels.webhooks import Forbidden, public_url


async def twilio_form(request: Request, auth_token: str | None, base_url: str | None) -> dict[str, str]:
    """The form Twilio posted, after checking X-Twilio-Signature with the account's auth token against
    the URL Twilio called (`base_url`: server.public_url, see channels/webhooks.py)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    signature = request.headers.get("x-twilio-signature", "")
    if (
        not auth_token
        or not signature
        or not RequestValidator(auth_token).validate(public_url(request, base_url), form, signature)
    ):
        raise Forbidden("twilio")
    return form
