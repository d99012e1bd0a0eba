"""Issue 15: webhook signatures are checked against our own URL, and a signed Slack click counts once."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from gateway.cli import main
from tests.fixtures import SLACK_SECRET, TWILIO_TOKEN, Harness, write_config

# -- the Twilio signature is made over our URL, never one the client names -----------------------


def test_a_signature_for_another_sites_url_is_refused_whatever_the_forwarded_headers_say(harness: Harness) -> None:
    form = {"MessageSid": "SM1", "MessageStatus": "failed"}
    url = "https://evil.example/webhooks/twilio/status"
    headers = {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, form),
               "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}  # fmt: skip
    assert harness.api.post("/webhooks/twilio/status", data=form, headers=headers).status_code == 403


def test_twilio_webhooks_without_a_public_url_are_reported(harness: Harness) -> None:

    settings = harness.settings
    assert settings.public_url_missing  # the fixture sets TWILIO_AUTH_TOKEN and no server.public_url
    with_url = settings.server.model_copy(update={"public_url": "https://parley.example.com"})
    assert not dataclasses.replace(settings, server=with_url).public_url_missing
    assert not dataclasses.replace(settings, twilio_auth_token=None).public_url_missing


def test_serve_refuses_to_start_with_twilio_webhooks_and_no_public_url(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    with socket.socket() as busy:  # should serve start anyway, it stops at once on a port in use
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = main(["serve", "--config", str(config), "--port", str(busy.getsockname()[1])])
    assert code == 1
    assert "server.public_url" in capsys.readouterr().err


# -- Slack: a signed request replayed within its 5 minutes does nothing -------------------------


def test_a_replayed_slack_acknowledge_is_answered_and_ignored(harness: Harness) -> None:
    updates: list[str] = []

    async def update_slack(payload: dict[str, Any], who: str, when: datetime) -> None:
        updates.append(who)

    harness.api.app.state.webhooks.slack_acknowledged = update_slack
    nid = harness.notify()
    payload = {"type": "block_actions", "user": {"id": "U123", "username": "dana"}, "channel": {"id": "C42"},
               "message": {"ts": "1700000000.000100"}, "actions": [{"action_id": "parley_ack", "value": f"{nid}|6.0.slack"}]}  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": timestamp, "Content-Type": "application/x-www-form-urlencoded",
               "X-Slack-Signature": SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=timestamp, body=body)}  # fmt: skip
    for _ in range(2):
        assert harness.api.post("/webhooks/slack/interactions", content=body, headers=headers).status_code == 200
    timeline = [entry["what"] for entry in harness.show(nid)["timeline"]]
    assert timeline.count("event:acknowledged") == 1
    assert updates == ["dana"]
