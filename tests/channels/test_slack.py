"""Slack through the real slack_sdk AsyncWebClient against Prism on Slack's published contract."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.base import Outcome, Reason, SendResult
from channels.common import ProviderConfigError
from channels.slack.channel import ACK_ACTION, SlackChannel, SlackSettings, blocks, classify
from rules.model import Channel
from tests.channels.conftest import make_message
from tests.contracts import overlays, prism

ENV = {"SLACK_BOT_TOKEN": "xoxb-test-token"}


@pytest.fixture
def slack(prisms: dict[str, prism.Prism]) -> SlackChannel:
    return SlackChannel(SlackSettings(base_url=prisms["slack"].url + "/"), ENV)


def send(channel: SlackChannel, address: str = "#marketplace-ops") -> SendResult:
    message = make_message(Channel.SLACK, address, {"text": "Inquiry n-123 is unanswered"})
    return asyncio.run(channel.send(message))


def test_a_post_the_contract_accepts_is_delivered_with_channel_and_ts(slack: SlackChannel) -> None:
    # Prism answers with the contract's example message, whatever channel we named
    assert send(slack) == SendResult(Outcome.DELIVERED, provider_id="C1H9RESGL:1503435956.000247")


def test_a_user_is_messaged_in_the_dm_that_conversations_open_returns(slack: SlackChannel) -> None:
    opened: list[str] = []
    original = slack.client.conversations_open

    async def spy(**kwargs: Any) -> Any:
        response = await original(**kwargs)
        opened.append(response["channel"]["id"])
        return response

    slack.client.conversations_open = spy  # type: ignore[method-assign,assignment]
    assert send(slack, "U0123ABCD").outcome is Outcome.DELIVERED
    assert opened == ["D069C7QFK"]  # the contract's example DM


def test_the_message_has_the_text_and_an_acknowledge_button() -> None:
    message = make_message(Channel.SLACK, "#ops", {"text": "x"})
    section, actions = blocks(message, "*Inquiry* unanswered", "Acknowledge")
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": "*Inquiry* unanswered"}}
    [button] = actions["elements"]
    assert (button["action_id"], button["value"]) == (ACK_ACTION, "n-123|0.0.slack")
    assert button["text"] == {"type": "plain_text", "text": "Acknowledge"}


@pytest.mark.parametrize(
    ("example", "reason"),
    [
        ("channel_not_found", Reason.ADDRESS_INVALID),
        ("not_in_channel", None),
        ("is_archived", None),
        ("invalid_auth", None),
    ],
)
def test_slack_refusals_are_permanent(slack: SlackChannel, example: str, reason: Reason | None) -> None:
    slack.client.headers["Prefer"] = f"code=200, example={example}"
    result = send(slack)
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, reason)
    assert result.detail is not None and f"slack {example} (http 200)" in result.detail


def test_429_is_transient_and_honours_retry_after(slack: SlackChannel) -> None:
    slack.client.headers["Prefer"] = "code=429"
    result = send(slack)
    assert result.outcome is Outcome.TRANSIENT and result.retry_after == overlays.RETRY_AFTER
    assert result.detail == "slack ratelimited (http 429)"


def test_500_is_transient(slack: SlackChannel) -> None:
    slack.client.headers["Prefer"] = "code=500"
    result = send(slack)
    assert result.outcome is Outcome.TRANSIENT and result.retry_after is None


def test_a_request_without_credentials_breaks_the_contract(slack: SlackChannel) -> None:
    slack.client.token = None  # no Authorization header: Prism answers 401
    result = send(slack)
    assert result.outcome is Outcome.PERMANENT and result.detail is not None and "(http 401)" in result.detail


def test_blocks_sent_as_an_array_break_the_published_contract(prisms: dict[str, prism.Prism]) -> None:
    """Why the adapter sends `blocks` JSON-encoded: the Web API documents it as a string."""
    client = AsyncWebClient(token=ENV["SLACK_BOT_TOKEN"], base_url=prisms["slack"].url + "/")
    message = make_message(Channel.SLACK, "#ops", {"text": "x"})
    with pytest.raises(SlackApiError) as caught:
        asyncio.run(client.chat_postMessage(channel="#ops", text="x", blocks=blocks(message, "x", "Ack")))
    assert caught.value.response.status_code == 422
    violations = json.loads(caught.value.response.headers["sl-violations"])
    assert violations[0]["location"] == ["request", "body", "blocks"]
    posted = asyncio.run(
        client.chat_postMessage(channel="#ops", text="x", blocks=json.dumps(blocks(message, "x", "Ack")))
    )
    assert posted.status_code == 200


def test_no_server_is_transient() -> None:
    channel = SlackChannel(SlackSettings(base_url=f"http://127.0.0.1:{prism.free_port()}/"), ENV)
    result = send(channel)
    assert result.outcome is Outcome.TRANSIENT and result.detail is not None and "slack connection" in result.detail


def test_a_missing_token_fails_when_the_adapter_is_built() -> None:
    with pytest.raises(ProviderConfigError, match="SLACK_BOT_TOKEN"):
        SlackChannel(SlackSettings(), {})


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, "ratelimited", Outcome.TRANSIENT),
        (200, "token_revoked", Outcome.PERMANENT),
        (200, "some_new_error", Outcome.PERMANENT),
        (503, "", Outcome.TRANSIENT),
        (429, "", Outcome.TRANSIENT),
    ],
)
def test_the_slack_error_table(status: int, error: str, outcome: Outcome) -> None:
    result = classify(status, error, {"retry-after": "12"})
    assert result.outcome is outcome
    assert result.retry_after == (12.0 if outcome is Outcome.TRANSIENT else None)
