"""Checking provider webhook signatures (Twilio's X-Twilio-Signature, Slack's signing secret)."""

from __future__ import annotations

from fastapi import Request
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from gateway.config import Settings


class Forbidden(Exception):
    """A webhook whose signature does not check out."""


PUBLIC_URL_NEEDED = (
    "Twilio webhooks are configured (the Twilio auth token is set) but server.public_url is not; "
    "set it to the URL Twilio reaches Parley on (see docs/deployment.md)"
)


def public_url(request: Request, settings: Settings) -> str:
    """The URL the provider signed: server.public_url with this request's path and query, or without
    it the URL the request arrived on. Never X-Forwarded-Host/Proto: any client can send those, and a
    signature Twilio made for another site's URL must not pass here."""
    if settings.server.public_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return settings.server.public_url.rstrip("/") + request.url.path + query
    return str(request.url)


def public_url_missing(settings: Settings) -> bool:
    """Twilio webhooks are configured but server.public_url is not: behind a proxy every signature
    would fail, and the URL checked would be whatever Host the request names."""
    return bool(settings.twilio_auth_token) and not settings.server.public_url


async def twilio_form(request: Request, settings: Settings) -> dict[str, str]:
    """The form Twilio posted, after checking X-Twilio-Signature with the account's auth token."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    token = settings.twilio_auth_token
    signature = request.headers.get("x-twilio-signature", "")
    if (
        not token
        or not signature
        or not RequestValidator(token).validate(public_url(request, settings), form, signature)
    ):
        raise Forbidden("twilio")
    return form


async def slack_body(request: Request, settings: Settings) -> bytes:
    """The raw body Slack posted, after checking its signature and timestamp (5 minutes)."""
    body = await request.body()
    secret = settings.slack_signing_secret
    timestamp, signature = request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature")
    if not secret or not SignatureVerifier(secret).is_valid(body, timestamp, signature):
        raise Forbidden("slack")
    return body
