"""Checking Slack's request signature (signing secret, 5-minute timestamp window) on interactions."""

from __future__ import annotations

from fastapi import Request
from slack_sdk.signature import SignatureVerifier

from channels.webhooks import Forbidden


async def slack_body(request: Request, signing_secret: str | None) -> bytes:
    """The raw body Slack posted, after checking its signature and timestamp (5 minutes)."""
    body = await request.body()
    timestamp, signature = request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature")
    if not signing_secret or not SignatureVerifier(signing_secret).is_valid(body, timestamp, signature):
        raise Forbidden("slack")
    return body
