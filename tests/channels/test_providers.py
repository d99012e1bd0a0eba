"""The providers factory: each configured section builds its adapter, the rest stay on the outbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pydantic import ValidationError

from channels.base import Reason
from channels.common import ProviderConfigError
from channels.email.channel import EmailChannel
from channels.fcm.channel import FCM_ERRORS
from channels.outbox.channel import OutboxChannel
from channels.providers import ProvidersConfig, build_registry
from channels.slack.channel import SLACK_ERRORS, SlackChannel
from channels.twilio.client import TWILIO_ERRORS
from channels.twilio.sms import SmsChannel
from channels.twilio.voice import VoiceChannel
from gateway.state.store import Store
from rules.model import Channel
from tests.channels.conftest import TWILIO_ENV

STORE = cast(Store, object())  # the outbox only keeps it; nothing is stored here
ENV = {**TWILIO_ENV, "SLACK_BOT_TOKEN": "xoxb-test"}


def test_no_providers_section_means_the_outbox_everywhere() -> None:
    registry = build_registry(ProvidersConfig(), STORE, environ={})
    assert registry.describe() == {str(c): "OutboxChannel" for c in Channel}


def test_each_section_builds_its_adapter_and_call_is_served_by_voice() -> None:
    config = ProvidersConfig.model_validate(
        {
            "email": {"host": "smtp.example.com", "default": {"from": "Acme <a@acme.example>"}},
            "sms": {"default": {"from_number": "+15005550006"}},
            "voice": {"default": {"from_number": "+15005550006"}},
            "slack": {},
        }
    )
    registry = build_registry(config, STORE, public_url="https://parley.example/", environ=ENV)
    assert isinstance(registry[Channel.EMAIL], EmailChannel)
    assert isinstance(registry[Channel.SLACK], SlackChannel)
    assert isinstance(registry[Channel.PUSH], OutboxChannel)
    sms, voice = registry[Channel.SMS], registry[Channel.CALL]
    assert isinstance(sms, SmsChannel) and isinstance(voice, VoiceChannel)
    assert sms.settings.webhook("/webhooks/twilio/status") == "https://parley.example/webhooks/twilio/status"
    assert voice.settings.public_url == "https://parley.example/"


def test_a_section_keeps_its_own_public_url() -> None:
    config = ProvidersConfig.model_validate(
        {"sms": {"public_url": "https://hooks.example", "default": {"from_number": "+15005550006"}}}
    )
    sms = build_registry(config, STORE, public_url="https://parley.example", environ=ENV)[Channel.SMS]
    assert cast(Any, sms).settings.public_url == "https://hooks.example"


def test_a_section_whose_secret_is_missing_fails_at_build_time() -> None:
    with pytest.raises(ProviderConfigError, match="SLACK_BOT_TOKEN"):
        build_registry(ProvidersConfig.model_validate({"slack": {}}), STORE, environ={})


def test_unknown_keys_and_bad_values_are_configuration_errors() -> None:
    with pytest.raises(ValidationError):
        ProvidersConfig.model_validate({"fax": {}})
    with pytest.raises(ValidationError):
        ProvidersConfig.model_validate({"sms": {"default": {"from_number": "0151 123"}}})
    with pytest.raises(ValidationError):
        ProvidersConfig.model_validate({"sms": {"default": {}}})


# -- docs/channels.md follows the code -------------------------------------------------------------

DOC = (Path(__file__).resolve().parents[2] / "docs" / "channels.md").read_text(encoding="utf-8")


def test_the_documented_providers_section_is_valid() -> None:
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC, flags=re.DOTALL)]
    examples = [b["providers"] for b in blocks if isinstance(b, dict) and "providers" in b]
    assert examples, "docs/channels.md shows a providers: section"
    for example in examples:
        ProvidersConfig.model_validate(example)


def test_every_error_the_tables_know_is_documented() -> None:
    missing = [f"| {code} |" for code in TWILIO_ERRORS if f"| {code} |" not in DOC]
    missing += [f"`{error}`" for error in SLACK_ERRORS if f"`{error}`" not in DOC]
    missing += [what.split(" ")[0] for _, _, _, what in FCM_ERRORS if f"`{what.split(' ')[0]}`" not in DOC]
    missing += [f"`{reason}`" for reason in Reason if f"`{reason}`" not in DOC]
    assert not missing, f"docs/channels.md lacks {missing}"
