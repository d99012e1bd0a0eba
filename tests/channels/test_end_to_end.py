"""Real providers end to end through a worker: the twilio SDK against Prism on Twilio's contract,
receipts through the signed status webhook, retries and fallbacks as the policy says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from channels.registry import Registry
from channels.twilio.sms import SmsChannel, SmsSettings
from rules.model import Channel
from tests.channels.conftest import TWILIO_ENV, PrismHttpClient
from tests.fixtures import Harness
from tests.gateway.test_webhooks import twilio_post

PRISM_SID = "SM" + "a" * 32  # the contract's example Message SID


def use_twilio_sms(harness: Harness, http: PrismHttpClient) -> None:
    settings = SmsSettings.model_validate(
        {"public_url": "https://parley.example", "default": {"from_number": "+15005550006"}}
    )
    adapters: dict[Channel, Any] = {c: harness.runtime.channels[c] for c in Channel}
    adapters[Channel.SMS] = SmsChannel(settings, TWILIO_ENV, http)
    harness.runtime.channels = Registry(adapters)


def reminder(harness: Harness, nid: str) -> dict[str, Any]:
    return next(d for d in harness.show(nid)["deliveries"] if d["attempt"] == "2.0.sms")


def test_sms_goes_to_twilio_and_a_delivered_receipt_updates_it(harness: Harness, twilio_http: PrismHttpClient) -> None:
    use_twilio_sms(harness, twilio_http)
    nid = harness.notify()
    harness.work()
    harness.at(timedelta(minutes=15))
    assert twilio_http.sent[-1]["data"]["To"] == "+14155550123"
    assert reminder(harness, nid) | {"status": "sent", "provider_id": PRISM_SID} == reminder(harness, nid)
    receipt = {"MessageSid": PRISM_SID, "MessageStatus": "delivered", "AccountSid": TWILIO_ENV["TWILIO_ACCOUNT_SID"]}
    assert twilio_post(harness, "/webhooks/twilio/status", receipt).status_code == 204
    assert reminder(harness, nid)["status"] == "delivered"
    assert twilio_post(harness, "/webhooks/twilio/status", dict(receipt, MessageStatus="sent")).status_code == 204
    assert reminder(harness, nid)["status"] == "delivered"  # a late, out-of-order receipt changes nothing


def test_an_undelivered_receipt_runs_the_fallback(harness: Harness, twilio_http: PrismHttpClient) -> None:
    use_twilio_sms(harness, twilio_http)
    nid = harness.notify()
    harness.work()
    harness.at(timedelta(minutes=15))
    receipt = {"MessageSid": PRISM_SID, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    twilio_post(harness, "/webhooks/twilio/status", receipt)
    assert reminder(harness, nid)["error"] == "twilio undelivered (error 30003)"
    harness.work()  # the receipt made the notification due: its fallback (sms -> email) runs now
    assert harness.sent(nid)[-1] == ("email", "inquiry-reminder")


def test_a_transient_failure_is_retried_with_backoff_then_delivered(
    harness: Harness, twilio_http: PrismHttpClient
) -> None:
    use_twilio_sms(harness, twilio_http)
    nid = harness.notify()
    harness.work()
    twilio_http.prefer = "code=503"
    harness.at(timedelta(minutes=15))
    pending = reminder(harness, nid)
    assert (pending["status"], pending["tries"]) == ("pending", 1)
    assert pending["retry_at"] is not None
    twilio_http.prefer = None
    harness.at(timedelta(seconds=7))  # the first retry waits 10 s, jittered by at most 20%
    assert reminder(harness, nid)["tries"] == 1
    harness.at(timedelta(seconds=6))
    assert (reminder(harness, nid)["status"], reminder(harness, nid)["tries"]) == ("sent", 2)
    assert not any(m["channel"] == "email" and m["template"] == "inquiry-reminder" for m in harness.outbox())


def test_a_permanent_failure_hands_over_to_the_fallback_and_remembers_an_opt_out(
    harness: Harness, twilio_http: PrismHttpClient
) -> None:
    use_twilio_sms(harness, twilio_http)
    nid = harness.notify()
    harness.work()
    twilio_http.prefer = "code=400, example=opted_out"
    harness.at(timedelta(minutes=15))
    failed = reminder(harness, nid)
    assert failed["status"] == "failed" and failed["error"].startswith("opted_out")
    assert harness.sent(nid)[-1] == ("email", "inquiry-reminder")
    calls = len(twilio_http.sent)
    later = harness.notify(event="quick.ping")
    harness.work()
    assert len(twilio_http.sent) == calls  # the opted-out number is skipped, not sent to again
    sms = next(d for d in harness.show(later)["deliveries"] if d["channel"] == "sms")
    assert (sms["status"], sms["reason"]) == ("skipped", "opted_out")
