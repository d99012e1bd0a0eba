"""SMS and voice through the real twilio SDK against Prism on Twilio's published contract."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from channels.base import Outcome, Reason, SendResult
from channels.common import ProviderConfigError
from channels.twilio.client import classify
from channels.twilio.sms import SmsChannel, SmsSettings
from channels.twilio.voice import VoiceChannel, VoiceSettings
from rules.model import Channel
from tests.channels.conftest import TWILIO_ENV, PrismHttpClient, make_message
from tests.contracts import overlays, prism

PUBLIC = "https://parley.example"
SERVICE = "MG" + "b" * 32


def sms(http: PrismHttpClient, env: dict[str, str] = TWILIO_ENV) -> SmsChannel:
    settings = SmsSettings.model_validate(
        {
            "public_url": PUBLIC,
            "default": {"messaging_service_sid": SERVICE},
            "tenants": {"acme": {"from_number": "+15005550006"}},
        }
    )
    return SmsChannel(settings, env, http)


def voice(http: PrismHttpClient, **extra: Any) -> VoiceChannel:
    settings = VoiceSettings.model_validate({"public_url": PUBLIC, "default": {"from_number": "+15005550006"}, **extra})
    return VoiceChannel(settings, TWILIO_ENV, http)


def send_sms(channel: SmsChannel, to: str = "+4915112345678", tenant: str = "acme") -> SendResult:
    return asyncio.run(channel.send(make_message(Channel.SMS, to, {"body": "You have a new inquiry"}, tenant)))


def call(channel: VoiceChannel, to: str = "+4915112345678") -> SendResult:
    return asyncio.run(channel.send(make_message(Channel.CALL, to, {"speech": "Please answer your buyer."})))


def test_an_sms_the_contract_accepts_is_accepted_with_the_message_sid(twilio_http: PrismHttpClient) -> None:
    result = send_sms(sms(twilio_http))
    assert result == SendResult(Outcome.ACCEPTED, provider_id="SM" + "a" * 32)
    [sent] = twilio_http.sent
    assert sent["status"] == 201 and sent["url"].endswith("/2010-04-01/Accounts/AC" + "a" * 32 + "/Messages.json")
    assert sent["data"] == {
        "To": "+4915112345678", "Body": "You have a new inquiry", "From": "+15005550006",
        "StatusCallback": f"{PUBLIC}/webhooks/twilio/status",
    }  # fmt: skip


def test_a_tenant_without_its_own_number_sends_through_the_messaging_service(twilio_http: PrismHttpClient) -> None:
    assert send_sms(sms(twilio_http), tenant="globex").outcome is Outcome.ACCEPTED
    assert twilio_http.sent[0]["data"]["MessagingServiceSid"] == SERVICE
    assert "From" not in twilio_http.sent[0]["data"]


@pytest.mark.parametrize(
    ("prefer", "outcome", "reason", "words"),
    [
        ("code=400, example=opted_out", Outcome.PERMANENT, Reason.OPTED_OUT, "opted_out: twilio 21610"),
        ("code=400, example=invalid_to", Outcome.PERMANENT, Reason.ADDRESS_INVALID, "address_invalid: twilio 21211"),
        ("code=400, example=not_mobile", Outcome.PERMANENT, Reason.ADDRESS_INVALID, "address_invalid: twilio 21614"),
        ("code=400, example=region", Outcome.PERMANENT, None, "twilio 21408 sending to this region"),
        ("code=401", Outcome.PERMANENT, None, "twilio 20003 authentication failed"),
        ("code=500", Outcome.TRANSIENT, None, "twilio 20500"),
    ],
)
def test_twilio_errors_are_classified_by_their_code(
    twilio_http: PrismHttpClient, prefer: str, outcome: Outcome, reason: Reason | None, words: str
) -> None:
    twilio_http.prefer = prefer
    result = send_sms(sms(twilio_http))
    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, None)
    assert result.detail is not None and result.detail.startswith(words)


@pytest.mark.parametrize("prefer", ["code=429", "code=503"])
def test_429_and_503_are_transient_and_keep_retry_after(twilio_http: PrismHttpClient, prefer: str) -> None:
    twilio_http.prefer = prefer
    result = send_sms(sms(twilio_http))
    assert result.outcome is Outcome.TRANSIENT and result.retry_after == overlays.RETRY_AFTER


def test_a_request_that_breaks_the_contract_is_caught_by_prism(twilio_http: PrismHttpClient) -> None:
    """An account SID that is not `AC` + 32 hex digits: Prism answers 422, we call it permanent."""
    result = send_sms(sms(twilio_http, {**TWILIO_ENV, "TWILIO_ACCOUNT_SID": "ACnot-a-sid"}))
    assert [s["status"] for s in twilio_http.sent] == [422]
    assert result.outcome is Outcome.PERMANENT and result.detail is not None and "http 422" in result.detail
    assert "breaks the published contract" in result.detail


def test_no_server_is_transient() -> None:
    result = send_sms(sms(PrismHttpClient(f"http://127.0.0.1:{prism.free_port()}")))
    assert result.outcome is Outcome.TRANSIENT and result.detail is not None and "twilio connection" in result.detail


def test_a_number_that_is_not_e164_is_refused_before_any_request(twilio_http: PrismHttpClient) -> None:
    result = send_sms(sms(twilio_http), to="0151 1234567")
    assert result.outcome is Outcome.PERMANENT and result.reason is Reason.ADDRESS_INVALID
    assert twilio_http.sent == []


def test_a_call_asks_our_voice_webhook_for_its_script(twilio_http: PrismHttpClient) -> None:
    result = call(voice(twilio_http))
    assert result == SendResult(Outcome.ACCEPTED, provider_id="CA" + "a" * 32)
    [sent] = twilio_http.sent
    assert sent["status"] == 201 and sent["url"].endswith("/Calls.json")
    url = urlsplit(sent["data"]["Url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{PUBLIC}/webhooks/twilio/voice/outbound"
    assert parse_qs(url.query) == {"notification": ["n-123"], "attempt": ["0.0.call"]}
    assert sent["data"]["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/status"
    assert sent["data"]["From"] == "+15005550006" and sent["data"]["To"] == "+4915112345678"


def test_a_call_with_inline_twiml_speaks_the_rendered_text(twilio_http: PrismHttpClient) -> None:
    assert call(voice(twilio_http, inline_twiml=True, language="en-GB")).outcome is Outcome.ACCEPTED
    data = twilio_http.sent[0]["data"]
    assert "Url" not in data
    assert (
        data["Twiml"]
        == '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-GB">Please answer your buyer.</Say></Response>'
    )


@pytest.mark.parametrize(
    ("prefer", "outcome"),
    [("code=400, example=invalid_to", Outcome.PERMANENT), ("code=429", Outcome.TRANSIENT)],
)
def test_call_errors_use_the_same_table(twilio_http: PrismHttpClient, prefer: str, outcome: Outcome) -> None:
    twilio_http.prefer = prefer
    assert call(voice(twilio_http)).outcome is outcome


def test_voice_needs_numbers_and_a_way_to_its_script() -> None:
    with pytest.raises(ValidationError, match="from_number"):
        VoiceSettings.model_validate({"public_url": PUBLIC, "default": {"messaging_service_sid": SERVICE}})
    with pytest.raises(ProviderConfigError, match="public_url"):
        VoiceChannel(VoiceSettings.model_validate({"default": {"from_number": "+15005550006"}}), TWILIO_ENV)


def test_missing_credentials_fail_when_the_adapter_is_built(twilio_http: PrismHttpClient) -> None:
    with pytest.raises(ProviderConfigError, match="TWILIO_AUTH_TOKEN"):
        sms(twilio_http, {"TWILIO_ACCOUNT_SID": "AC" + "a" * 32})


@pytest.mark.parametrize(
    ("status", "code", "outcome", "reason"),
    [
        (400, 21610, Outcome.PERMANENT, Reason.OPTED_OUT),
        (400, 21217, Outcome.PERMANENT, Reason.ADDRESS_INVALID),
        (400, 21999, Outcome.PERMANENT, None),  # a code we do not know: its HTTP status decides
        (429, 14107, Outcome.TRANSIENT, None),
        (502, 502, Outcome.TRANSIENT, None),  # no code in the body: the SDK repeats the status
        (404, None, Outcome.PERMANENT, None),
    ],
)
def test_the_twilio_error_table(status: int, code: int | None, outcome: Outcome, reason: Reason | None) -> None:
    result = classify(status, code, "message", retry_after_s=3.0)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.retry_after == (3.0 if outcome is Outcome.TRANSIENT else None)
