"""Slack through the Web API (slack_sdk's AsyncWebClient): a Block Kit message with an
Acknowledge button.

The address is a channel (`#ops`, `C0123…`) or a user (`U0123…` / `W0123…`, messaged in a
DM opened with `conversations.open`). Slack posts the message or refuses it, so a send is
DELIVERED, with provider id `{channel id}:{ts}`. The button's action id is `parley_ack` and
its value `{notification}|{attempt}`; the interactions webhook turns a click into the
notification's `acknowledged`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp
from pydantic import Field
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from channels.base import Message, Outcome, Reason, SendResult, hold_back
from channels.common import Bound, MaxInFlight, Section, env_secret, header, retry_after
from rules.model import Channel

ACK_ACTION = "parley_ack"


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters, so a name cannot ping a channel or forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SECTION_LIMIT = 3000  # characters of a section block's text

# Slack `error` -> (outcome, reason). Not listed: HTTP 429 and 5xx are transient, the rest permanent.
# api.slack.com/methods/chat.postMessage#errors, api.slack.com/methods/conversations.open#errors
SLACK_ERRORS: dict[str, tuple[Outcome, Reason | None]] = {
    "ratelimited": (Outcome.TRANSIENT, None),
    "rate_limited": (Outcome.TRANSIENT, None),
    "internal_error": (Outcome.TRANSIENT, None),
    "fatal_error": (Outcome.TRANSIENT, None),
    "service_unavailable": (Outcome.TRANSIENT, None),
    "request_timeout": (Outcome.TRANSIENT, None),
    "invalid_auth": (Outcome.PERMANENT, None),
    "not_authed": (Outcome.PERMANENT, None),
    "account_inactive": (Outcome.PERMANENT, None),
    "token_revoked": (Outcome.PERMANENT, None),
    "token_expired": (Outcome.PERMANENT, None),
    "missing_scope": (Outcome.PERMANENT, None),
    "channel_not_found": (Outcome.PERMANENT, Reason.ADDRESS_INVALID),
    "user_not_found": (Outcome.PERMANENT, Reason.ADDRESS_INVALID),
    "user_disabled": (Outcome.PERMANENT, Reason.ADDRESS_INVALID),
    "cannot_dm_bot": (Outcome.PERMANENT, Reason.ADDRESS_INVALID),
    "not_in_channel": (Outcome.PERMANENT, None),  # invite the app to the channel
    "is_archived": (Outcome.PERMANENT, None),
    "msg_too_long": (Outcome.PERMANENT, None),
    "invalid_blocks": (Outcome.PERMANENT, None),
    "invalid_arguments": (Outcome.PERMANENT, None),
}


def classify(status: int, error: str, headers: Mapping[str, str] | None = None) -> SendResult:
    """A Slack Web API failure (HTTP status and the body's `error`) as a send result."""
    known = SLACK_ERRORS.get(error)
    if status == 429:
        outcome, reason = Outcome.TRANSIENT, None
    elif known is not None:
        outcome, reason = known
    else:
        outcome, reason = (Outcome.TRANSIENT if status >= 500 else Outcome.PERMANENT), None
    wait = retry_after(header(headers, "Retry-After")) if outcome is Outcome.TRANSIENT else None
    return SendResult.failed(outcome, f"slack {error or 'error'} (http {status})", reason, retry_after=wait)


class SlackSettings(Section):
    """`providers.slack`. `token_env` names the variable holding the bot token (xoxb-…)."""

    token_env: str = "SLACK_BOT_TOKEN"
    base_url: str = AsyncWebClient.BASE_URL  # another only for GovSlack or a test server
    timeout: Annotated[int, Field(gt=0)] = 30
    max_in_flight: MaxInFlight = 20  # chat.postMessage calls at once, per worker process
    button: str = "Acknowledge"


class SlackChannel:
    name = Channel.SLACK

    def __init__(self, settings: SlackSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        token = env_secret(environ, settings.token_env, "providers.slack")
        self.client = AsyncWebClient(token=token, base_url=settings.base_url, timeout=settings.timeout)
        self._calls = Bound(settings.max_in_flight)

    async def send(self, message: Message) -> SendResult:
        async with self._calls.slot():
            return await self._post(message)

    async def _post(self, message: Message) -> SendResult:
        text = message.parts.get("text", "")
        held = await hold_back(message, self.settings.timeout)  # once a slot is free: waiting for one is the delay
        if held is not None:
            return held
        try:
            channel = await self._conversation(message.address)
            posted = await self.client.chat_postMessage(
                channel=channel, text=text, blocks=json.dumps(blocks(message, text, self.settings.button))
            )
        except SlackApiError as exc:
            response = exc.response
            return classify(response.status_code, str(response.get("error") or ""), response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult.failed(Outcome.TRANSIENT, f"slack connection: {type(exc).__name__}: {exc}")
        except SlackClientError as exc:  # refused by slack_sdk before sending
            return SendResult.failed(Outcome.PERMANENT, f"slack: {type(exc).__name__}: {exc}")
        return SendResult(Outcome.DELIVERED, provider_id=f"{posted['channel']}:{posted['ts']}")

    async def mark_acknowledged(self, channel: str, ts: str, text: str, who: str, when: datetime) -> SendResult:
        """Replace the message's button with who acknowledged it and when (chat.update)."""
        note = f":white_check_mark: Acknowledged by {escape_mrkdwn(who)} at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        body = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT] or " "}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]},
        ]
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=f"{text}\n{note}", blocks=json.dumps(body))
        except SlackApiError as exc:
            response = exc.response
            return classify(response.status_code, str(response.get("error") or ""), response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return SendResult.failed(Outcome.TRANSIENT, f"slack connection: {type(exc).__name__}: {exc}")
        return SendResult(Outcome.DELIVERED, provider_id=f"{channel}:{ts}")

    async def _conversation(self, address: str) -> str:
        """The channel to post in: the DM with a user (`U…` / `W…`), else the address itself."""
        if address[:1] in ("U", "W") and address[1:].isalnum():
            opened = await self.client.conversations_open(users=address)
            channel: Any = opened["channel"]
            return str(channel["id"])
        return address


def blocks(message: Message, text: str, button: str) -> list[dict[str, Any]]:
    """A section with the rendered text and an Acknowledge button (sent JSON-encoded, as the
    Web API documents `blocks`)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT] or " "}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": ACK_ACTION,
                    "text": {"type": "plain_text", "text": button},
                    "style": "primary",
                    "value": f"{message.notification_id}|{message.attempt_key}",
                }
            ],
        },
    ]
