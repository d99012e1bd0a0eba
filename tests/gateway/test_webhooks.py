"""Webhooks: every one signature-checked; inbound replies stop escalations; STOP/START opt-outs; Slack Acknowledge."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier
from twilio.request_validator import RequestValidator

from gateway.config import Settings
from tests.fixtures import NUMBERS, SLACK_SECRET, TWILIO_TOKEN, Clock, Harness

SELLER = "+14155550123"


def twilio_post(
    harness: Harness, path: str, form: dict[str, str], *, token: str = TWILIO_TOKEN, tamper: bool = False
) -> Any:
    url = f"http://testserver{path}"
    signature = RequestValidator(token).compute_signature(url, form)
    body = dict(form, Body=form.get("Body", "") + " (edited)") if tamper else form
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return harness.api.post(path, content=urlencode(body), headers=headers)


def inbound(sid: str, text: str, sender: str = SELLER, to: str = NUMBERS["acme"]) -> dict[str, str]:
    return {"MessageSid": sid, "From": sender, "To": to, "Body": text, "AccountSid": "AC" + "0" * 32}


def slack_post(harness: Harness, payload: dict[str, Any], *, secret: str = SLACK_SECRET, age: int = 0) -> Any:
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature,
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    return harness.api.post("/webhooks/slack/interactions", content=body, headers=headers)


def ack_payload(nid: str) -> dict[str, Any]:
    return {
        "type": "block_actions", "user": {"id": "U123", "username": "dana"},
        "channel": {"id": "C42"}, "message": {"ts": "1700000000.000100"},
        "actions": [{"action_id": "parley_ack", "value": f"{nid}|6.0.slack"}],
    }  # fmt: skip


def test_an_sms_reply_stops_the_senders_active_notifications(harness: Harness) -> None:
    nid = harness.notify()
    other = harness.notify(recipient={"id": "seller-9", "phone": "+14155550124", "email": "x@example.com"})
    harness.work()
    response = twilio_post(harness, "/webhooks/twilio/sms", inbound("SM1", "Yes, still available!"))
    assert response.status_code == 200
    assert "<Response" in response.text
    assert harness.show(nid)["status"] == "stopped"
    assert harness.show(nid)["ended"]["reason"] == "responded"
    assert harness.show(other)["status"] == "active"
    harness.at(timedelta(minutes=15))
    assert len(harness.sent(nid)) == 2  # the reminder never went out


def test_a_reply_to_another_tenants_number_does_not_stop_this_tenants_notification(harness: Harness) -> None:
    nid = harness.notify("acme")
    twilio_post(harness, "/webhooks/twilio/sms", inbound("SM2", "hello", to=NUMBERS["globex"]))
    assert harness.show(nid)["status"] == "active"


@pytest.mark.parametrize("tamper", ["body", "token", "missing"])
def test_a_bad_twilio_signature_is_403_and_changes_nothing(harness: Harness, tamper: str) -> None:
    nid = harness.notify()
    form = inbound("SM3", "yes")
    if tamper == "missing":
        response = harness.api.post("/webhooks/twilio/sms", data=form)
    else:
        response = twilio_post(harness, "/webhooks/twilio/sms", form, tamper=tamper == "body",
                               token="wrong-token" if tamper == "token" else TWILIO_TOKEN)  # fmt: skip
    assert response.status_code == 403
    assert harness.show(nid)["status"] == "active"


def test_a_replayed_twilio_delivery_is_ignored(harness: Harness) -> None:
    form = inbound("SM4", "STOP")
    assert twilio_post(harness, "/webhooks/twilio/sms", form).status_code == 200
    assert twilio_post(harness, "/webhooks/twilio/sms", inbound("SM5", "START")).status_code == 200
    assert twilio_post(harness, "/webhooks/twilio/sms", form).status_code == 200  # replay of the STOP
    nid = harness.notify(event="quick.ping")
    harness.work()
    assert ("sms", "inquiry-new") in harness.sent(nid)  # still opted in: the replay changed nothing


def test_stop_skips_sms_with_a_timeline_entry_until_start(harness: Harness) -> None:
    twilio_post(harness, "/webhooks/twilio/sms", inbound("SM6", "stop"))
    nid = harness.notify(event="quick.ping")
    harness.work()
    assert harness.sent(nid) == [("email", "inquiry-new")]
    view = harness.show(nid)
    sms = next(d for d in view["deliveries"] if d["channel"] == "sms")
    assert (sms["status"], sms["reason"]) == ("skipped", "opted_out")
    assert any("opted out" in e.get("message", "") for e in view["timeline"])
    twilio_post(harness, "/webhooks/twilio/sms", inbound("SM7", "START"))
    later = harness.notify(event="quick.ping")
    harness.work()
    assert ("sms", "inquiry-new") in harness.sent(later)


def test_behind_a_proxy_the_url_twilio_signed_is_server_public_url(settings: Settings, redis_client: Any) -> None:
    # Not X-Forwarded-Host: a client chooses that header (tests/masking/test_webhook_security.py).
    server = settings.server.model_copy(update={"public_url": "https://parley.example.com/"})
    harness = Harness(dataclasses.replace(settings, server=server), redis_client, Clock())
    try:
        nid = harness.notify()
        form = inbound("SM8", "yes")
        url = "https://parley.example.com/webhooks/twilio/sms"
        headers = {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, form)}
        assert harness.api.post("/webhooks/twilio/sms", data=form, headers=headers).status_code == 200
        assert harness.show(nid)["status"] == "stopped"
    finally:
        harness.close()


def test_slack_acknowledge_stops_the_escalation(harness: Harness) -> None:
    nid = harness.notify()
    harness.work()
    assert slack_post(harness, ack_payload(nid)).status_code == 200
    view = harness.show(nid)
    assert (view["status"], view["ended"]["reason"]) == ("stopped", "acknowledged")


@pytest.mark.parametrize(("secret", "age"), [("wrong-secret", 0), (SLACK_SECRET, 600)])
def test_slack_bad_or_replayed_signature_is_403(harness: Harness, secret: str, age: int) -> None:
    nid = harness.notify()
    assert slack_post(harness, ack_payload(nid), secret=secret, age=age).status_code == 403
    assert harness.show(nid)["status"] == "active"
