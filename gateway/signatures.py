"""Checking provider webhook signatures (Twilio's X-Twilio-Signature, Slack's signing secret)."""

from __future__ import annotations

from fastapi import Request
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from gateway.config import Settings


class Forbidden(Exception):
    """A webhook whose signature does not check out."""


def public_url(request: Request, settings: Settings) -> str:
    """The URL the provider called, as it saw it (scheme and host before any proxy)."""
    query = f"?{request.url.query}" if request.url.query else ""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/") + request.url.path + query
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = (
        request.headers.get("x-forwarded-host", request.headers.get("host", request.url.netloc)).split(",")[0].strip()
    )
    return f"{proto}://{host}{request.url.path}{query}"


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
