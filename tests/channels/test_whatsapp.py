"""WhatsApp through the real twilio SDK against Prism on Twilio's published contract; its settings,
registry entry, address and template parts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

import pytest
from pydantic import ValidationError

from channels.addresses import mask
from channels.base import Outcome, Reason, SendResult
from channels.common import ProviderConfigError
from channels.outbox.channel import OutboxChannel
from channels.providers import ProvidersConfig, build_registry
from channels.rendering.parts import WHATSAPP_BODY_MAX
from channels.rendering.render import Renderer, RenderError
from channels.twilio.sms import SmsChannel
from channels.twilio.whatsapp import WhatsAppChannel, WhatsAppSettings
from gateway.config import load_settings
from gateway.state.store import Store
from rules.catalog import Catalog
from rules.intent import Intent, Person
from rules.model import Channel
from rules.problems import RulesError
from tests.channels.conftest import TWILIO_ENV, PrismHttpClient, make_message
from tests.contracts import overlays

PUBLIC = "https://parley.example"
SERVICE = "MG" + "b" * 32
SENDER = "+15005550006"
TO = "+4915112345678"
SHIPPED = Path(__file__).resolve().parents[2] / "templates"


def whatsapp(
    http: PrismHttpClient, public_url: str | None = PUBLIC, env: dict[str, str] = TWILIO_ENV
) -> WhatsAppChannel:
    settings = WhatsAppSettings.model_validate(
        {
            "public_url": public_url,
            "default": {"messaging_service_sid": SERVICE},
            "tenants": {"acme": {"from_number": SENDER}},
        }
    )
    return WhatsAppChannel(settings, env, http)


def send(channel: WhatsAppChannel, to: str = TO, tenant: str = "acme") -> SendResult:
    message = make_message(Channel.WHATSAPP, to, {"body": "*New question* about Red bike"}, tenant)
    return asyncio.run(channel.send(message))


# -- the adapter against Twilio's contract ---------------------------------------------------------


def test_a_whatsapp_message_goes_to_the_messages_api_with_whatsapp_addresses(twilio_http: PrismHttpClient) -> None:
    result = send(whatsapp(twilio_http))
    assert result == SendResult(Outcome.ACCEPTED, provider_id="SM" + "a" * 32)
    [sent] = twilio_http.sent
    assert sent["status"] == 201  # Prism found the request valid under Twilio's published contract
    assert sent["url"].endswith("/2010-04-01/Accounts/AC" + "a" * 32 + "/Messages.json")
    assert sent["data"] == {
        "To": f"whatsapp:{TO}", "From": f"whatsapp:{SENDER}", "Body": "*New question* about Red bike",
        "StatusCallback": f"{PUBLIC}/webhooks/twilio/status",
    }  # fmt: skip


def test_a_tenant_without_its_own_number_sends_through_the_messaging_service(twilio_http: PrismHttpClient) -> None:
    assert send(whatsapp(twilio_http), tenant="globex").outcome is Outcome.ACCEPTED
    data = twilio_http.sent[0]["data"]
    assert (data["To"], data["MessagingServiceSid"]) == (f"whatsapp:{TO}", SERVICE)
    assert "From" not in data  # the service picks its WhatsApp sender for a whatsapp: recipient


def test_without_a_public_url_no_status_callback_is_asked_for(twilio_http: PrismHttpClient) -> None:
    assert send(whatsapp(twilio_http, public_url=None)).outcome is Outcome.ACCEPTED
    assert "StatusCallback" not in twilio_http.sent[0]["data"]


@pytest.mark.parametrize(
    ("prefer", "outcome", "reason", "words"),
    [
        ("code=400, example=invalid_to", Outcome.PERMANENT, Reason.ADDRESS_INVALID, "address_invalid: twilio 21211"),
        ("code=401", Outcome.PERMANENT, None, "twilio 20003 authentication failed"),
        ("code=500", Outcome.TRANSIENT, None, "twilio 20500"),
    ],
)
def test_errors_are_classified_by_the_twilio_table(
    twilio_http: PrismHttpClient, prefer: str, outcome: Outcome, reason: Reason | None, words: str
) -> None:
    twilio_http.prefer = prefer
    result = send(whatsapp(twilio_http))
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.detail is not None and result.detail.startswith(words)


def test_a_rate_limit_is_transient_and_keeps_retry_after(twilio_http: PrismHttpClient) -> None:
    twilio_http.prefer = "code=429"
    result = send(whatsapp(twilio_http))
    assert (result.outcome, result.retry_after) == (Outcome.TRANSIENT, overlays.RETRY_AFTER)


@pytest.mark.parametrize("to", ["0151 1234567", "whatsapp:+4915112345678"])
def test_an_address_that_is_not_e164_is_refused_before_any_request(twilio_http: PrismHttpClient, to: str) -> None:
    result = send(whatsapp(twilio_http), to=to)
    assert (result.outcome, result.reason) == (Outcome.PERMANENT, Reason.ADDRESS_INVALID)
    assert twilio_http.sent == []


def test_missing_credentials_name_the_whatsapp_section(twilio_http: PrismHttpClient) -> None:
    with pytest.raises(ProviderConfigError, match=r"providers\.whatsapp: .*TWILIO_AUTH_TOKEN"):
        whatsapp(twilio_http, env={"TWILIO_ACCOUNT_SID": "AC" + "a" * 32})


# -- configuration ---------------------------------------------------------------------------------

STORE = cast(Store, object())


def test_the_whatsapp_section_builds_the_adapter_and_leaves_sms_on_the_outbox() -> None:
    config = ProvidersConfig.model_validate({"whatsapp": {"default": {"from_number": SENDER}}})
    registry = build_registry(config, STORE, public_url="https://parley.example/", environ=TWILIO_ENV)
    adapter = registry[Channel.WHATSAPP]
    assert isinstance(adapter, WhatsAppChannel) and not isinstance(adapter, SmsChannel)
    assert adapter.settings.webhook("/webhooks/twilio/status") == "https://parley.example/webhooks/twilio/status"
    assert isinstance(registry[Channel.SMS], OutboxChannel)


def test_without_the_section_whatsapp_goes_to_the_outbox() -> None:
    registry = build_registry(ProvidersConfig(), STORE, environ={})
    assert isinstance(registry[Channel.WHATSAPP], OutboxChannel)


@pytest.mark.parametrize(
    "sender",
    [{"from_number": "whatsapp:+15005550006"}, {"from_number": "0151 123"}, {}],
    ids=["prefixed", "not-e164", "none"],
)
def test_a_sender_must_be_a_plain_e164_number_or_a_messaging_service(sender: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ProvidersConfig.model_validate({"whatsapp": {"default": sender}})


def test_a_whatsapp_sender_cannot_be_a_masking_proxy_number(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    whatsapp = {"default": {"messaging_service_sid": SERVICE}, "tenants": {"acme": {"from_number": SENDER}}}
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "providers": {"whatsapp": whatsapp},
                "tenants": {"acme": {"proxy_numbers": [SENDER]}},
                "rules": {"version": 1, "policies": []},
            }
        )
    )
    with pytest.raises(RulesError) as caught:
        load_settings(config, env={})
    [problem] = caught.value.problems
    assert problem.path == "tenants.acme.proxy_numbers[0]"
    assert (
        problem.message == f"{SENDER} is a provider's sender number (providers.sms/whatsapp/voice), not a proxy number"
    )


# -- the address: only `whatsapp`, never `phone` ---------------------------------------------------


def test_a_person_is_reached_on_whatsapp_only_at_their_whatsapp_number() -> None:
    both = Person(id="s", phone="+14155550123", whatsapp="+4915112345678")
    assert (both.address(Channel.WHATSAPP), both.address(Channel.SMS)) == ("+4915112345678", "+14155550123")
    assert Person(id="s", phone="+14155550123").address(Channel.WHATSAPP) is None  # no_address, no guess


def test_an_intents_whatsapp_number_must_be_e164() -> None:
    with pytest.raises(ValidationError, match=r"E\.164"):
        Person(id="s", whatsapp="whatsapp:+4915112345678")


def test_a_whatsapp_number_is_shown_masked() -> None:
    assert mask(Channel.WHATSAPP, "+4915112345678") == "+491********78"


# -- template parts: whatsapp.txt, else sms.txt of the same language --------------------------------


def render(locale: str, template: str = "inquiry-new", root: Path = SHIPPED, message: str = "Still there?") -> str:
    intent = Intent.model_validate(
        {
            "event": "inquiry.created",
            "recipient": {"id": "seller-42", "locale": locale, "whatsapp": "+4915112345678"},
            "data": {"listing": "Red bike", "message": message},
        }
    )
    rendered = Renderer(root).render(template, Channel.WHATSAPP, intent, None)
    assert rendered.sms is None  # SMS encoding and segments do not apply
    return f"{rendered.locale}: {rendered.parts['body']}"


def test_a_template_with_a_whatsapp_part_sends_it() -> None:
    assert render("en") == (
        'en: *New question about "Red bike"*\n\nStill there?\n\n'
        "Reply in the app: buyers who hear back quickly book more often."
    )
    assert render("de-AT").startswith("de: *Neue Frage zu „Red bike“*")


def test_without_a_whatsapp_part_the_sms_text_of_the_recipients_language_is_sent() -> None:
    # zh has no whatsapp.txt: its sms.txt, not en/whatsapp.txt
    assert render("zh") == "zh: Parley：有人询问“Red bike”：Still there? 请在应用中回复。"  # noqa: RUF001
    assert render("en", "inquiry-reminder") == (
        'en: Reminder: a question about "Red bike" is still waiting for your reply.'
    )


def test_a_template_has_whatsapp_when_it_has_either_part(tmp_path: Path) -> None:
    (tmp_path / "texted" / "en").mkdir(parents=True)
    (tmp_path / "texted" / "en" / "sms.txt").write_text("hi")
    (tmp_path / "mailed" / "en").mkdir(parents=True)
    (tmp_path / "mailed" / "en" / "email.txt").write_text("hi")
    catalog = Catalog.scan(tmp_path)
    assert catalog.missing_part("texted", Channel.WHATSAPP) is None
    assert catalog.missing_part("mailed", Channel.WHATSAPP) == (
        f"template 'mailed' has no whatsapp part (expected whatsapp.txt or sms.txt in {tmp_path / 'mailed' / 'en'})"
    )


def test_a_body_over_twilios_limit_fails_the_render() -> None:
    with pytest.raises(RenderError, match=f"the whatsapp body is .* characters; at most {WHATSAPP_BODY_MAX}"):
        render("en", message="x" * WHATSAPP_BODY_MAX)
