"""WhatsApp end to end through a worker: a policy step `send: whatsapp` on the outbox and through
the twilio SDK against Prism on Twilio's contract, receipts through the signed status webhook,
and the fallback for a person without a WhatsApp number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels.registry import Registry
from channels.twilio.whatsapp import WhatsAppChannel, WhatsAppSettings
from gateway.config import Settings, load_settings
from gateway.embedded import EmbeddedRedis
from rules.model import Channel
from tests.channels.conftest import TWILIO_ENV, PrismHttpClient
from tests.fixtures import KEYS, SLACK_SECRET, TWILIO_TOKEN, Harness, write_config
from tests.gateway.test_webhooks import twilio_post

PRISM_SID = "SM" + "a" * 32  # the contract's example Message SID
SELLER_WHATSAPP = "+4915112345678"
SELLER = {"id": "seller-42", "email": "seller@example.com", "phone": "+14155550123", "whatsapp": SELLER_WHATSAPP}
RULES = """
version: 1
destinations:
  ops-whatsapp: {channel: whatsapp, address: "+14155550177"}
policies:
  - name: chat
    match: {event: "inquiry.created"}
    steps:
      - send: whatsapp
        template: inquiry-new
      - wait: 1h
      - send: email
        template: inquiry-reminder
    fallback: {whatsapp: sms}
  - name: ops
    match: {event: "ops.*"}
    steps:
      - send: whatsapp
        to: ops-whatsapp
        template: inquiry-reminder
"""


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The harness's settings (tests/fixtures.py) with the rules above."""
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    return load_settings(write_config(tmp_path, RULES))


def use_twilio_whatsapp(harness: Harness, http: PrismHttpClient) -> None:
    settings = WhatsAppSettings.model_validate(
        {"public_url": "https://parley.example", "default": {"from_number": "+15005550006"}}
    )
    adapters: dict[Channel, Any] = {c: harness.runtime.channels[c] for c in Channel}
    adapters[Channel.WHATSAPP] = WhatsAppChannel(settings, TWILIO_ENV, http)
    harness.runtime.channels = Registry(adapters)


def deliveries(harness: Harness, nid: str) -> dict[str, dict[str, Any]]:
    return {d["channel"]: d for d in harness.show(nid)["deliveries"]}


def test_a_whatsapp_step_without_a_provider_goes_to_the_outbox_and_shows_in_the_notification(
    harness: Harness,
) -> None:
    nid = harness.notify(recipient=SELLER)
    harness.work()
    [delivery] = harness.show(nid)["deliveries"]
    assert delivery | {
        "attempt": "0.0.whatsapp", "channel": "whatsapp", "status": "delivered", "address": "+491********78",
        "provider_id": f"outbox:{nid}:0.0.whatsapp", "template": "inquiry-new", "sms": None,
    } == delivery  # fmt: skip
    [message] = harness.outbox()
    assert (message["channel"], message["notification_id"]) == ("whatsapp", nid)
    assert message["content"] == {
        "body": '*New question about "Red bike"*\n\nIs it still available?\n\n'
        "Reply in the app: buyers who hear back quickly book more often."
    }


def test_a_destination_on_whatsapp_gets_the_sms_text_when_the_template_has_no_whatsapp_part(
    harness: Harness,
) -> None:
    nid = harness.notify(event="ops.escalated", recipient=SELLER)
    harness.work()
    assert deliveries(harness, nid)["whatsapp"]["address"] == "+141******77"
    [message] = harness.outbox()
    assert message["content"] == {"body": 'Reminder: a question about "Red bike" is still waiting for your reply.'}


def test_a_person_without_a_whatsapp_number_gets_the_fallback_not_a_message_to_their_phone(
    harness: Harness,
) -> None:
    nid = harness.notify(recipient={k: v for k, v in SELLER.items() if k != "whatsapp"})
    harness.work()
    sent = deliveries(harness, nid)
    assert (sent["whatsapp"]["status"], sent["whatsapp"]["reason"]) == ("skipped", "no_address")
    assert (sent["sms"]["status"], sent["sms"]["instead_of"]) == ("delivered", "whatsapp")
    assert harness.sent(nid) == [("sms", "inquiry-new")]  # nothing went out on WhatsApp


@pytest.mark.parametrize("status", ["delivered", "read"])
def test_whatsapp_goes_to_twilio_and_a_signed_receipt_marks_it_delivered(
    harness: Harness, twilio_http: PrismHttpClient, status: str
) -> None:
    use_twilio_whatsapp(harness, twilio_http)
    nid = harness.notify(recipient=SELLER)
    harness.work()
    [request] = twilio_http.sent
    assert (request["status"], request["data"]["To"], request["data"]["From"]) == (
        201, f"whatsapp:{SELLER_WHATSAPP}", "whatsapp:+15005550006",
    )  # fmt: skip
    assert request["data"]["StatusCallback"] == "https://parley.example/webhooks/twilio/status"
    sent = deliveries(harness, nid)["whatsapp"]
    assert (sent["status"], sent["provider_id"]) == ("sent", PRISM_SID)
    receipt = {"MessageSid": PRISM_SID, "MessageStatus": status, "AccountSid": TWILIO_ENV["TWILIO_ACCOUNT_SID"],
               "To": f"whatsapp:{SELLER_WHATSAPP}", "From": "whatsapp:+15005550006"}  # fmt: skip
    assert twilio_post(harness, "/webhooks/twilio/status", receipt).status_code == 204
    assert deliveries(harness, nid)["whatsapp"]["status"] == "delivered"
    assert twilio_post(harness, "/webhooks/twilio/status", receipt, tamper=True).status_code == 403


def test_an_undelivered_receipt_fails_the_message_and_the_fallback_texts_the_phone(
    harness: Harness, twilio_http: PrismHttpClient
) -> None:
    """Outside WhatsApp's 24-hour window Twilio takes a free-form message, then reports it undelivered (63016)."""
    use_twilio_whatsapp(harness, twilio_http)
    nid = harness.notify(recipient=SELLER)
    harness.work()
    receipt = {"MessageSid": PRISM_SID, "MessageStatus": "undelivered", "ErrorCode": "63016",
               "To": f"whatsapp:{SELLER_WHATSAPP}", "From": "whatsapp:+15005550006"}  # fmt: skip
    assert twilio_post(harness, "/webhooks/twilio/status", receipt).status_code == 204
    failed = deliveries(harness, nid)["whatsapp"]
    assert (failed["status"], failed["error"]) == ("failed", "twilio undelivered (error 63016)")
    harness.work()  # the receipt made the notification due: its fallback (whatsapp -> sms) runs now
    assert harness.sent(nid) == [("sms", "inquiry-new")]
    assert deliveries(harness, nid)["sms"]["instead_of"] == "whatsapp"
