"""Twilio's webhooks: checking X-Twilio-Signature (status callbacks, inbound texts and calls), and the
URLs of our voice webhooks that Twilio is told to call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from channels.webhooks import Forbidden, public_url

VOICE_PREFIX = "/webhooks/twilio/voice"
Ref = Annotated[str, Query(max_length=64)]  # our own ids, echoed back by Twilio in the callback URL


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


def xml(body: str) -> Response:
    return Response(body, media_type="application/xml")


@dataclass(frozen=True)
class TwilioHooks:
    """How our Twilio webhooks are checked and addressed: the account's auth token, and
    server.public_url (the URL Twilio calls; None: the URL each request arrived on)."""

    auth_token: str | None
    public_url: str | None

    async def signed_form(self, request: Request) -> dict[str, str]:
        return await twilio_form(request, self.auth_token, self.public_url)

    def callback(self, request: Request, path: str, **query: str) -> str:
        """One of our voice webhooks' URLs, its query encoded (an id may hold `&`, `#`, spaces...)."""
        base = public_url(request, self.public_url).split("/webhooks/")[0]
        return f"{base}{VOICE_PREFIX}/{path}?{urlencode(query)}"
