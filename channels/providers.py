"""Which adapter serves each channel, from the `providers:` section of the configuration.

An explicit factory, no plugin scanning: each section present builds its provider, each
section absent leaves the channel on the outbox. `call` is served by the voice section.
Adding a channel is adding its folder (an adapter and its settings) and one line here.

    providers:
      email: {host: smtp.example.com, security: starttls, username_env: SMTP_USER,
              password_env: SMTP_PASSWORD, default: {from: "Acme <noreply@acme.example>"}}
      sms:   {default: {messaging_service_sid: MG...}}     # TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN
      voice: {default: {from_number: "+15550100"}}
      whatsapp: {default: {from_number: "+15550100"}}       # a WhatsApp-enabled Twilio number
      push:  {}                                            # GOOGLE_APPLICATION_CREDENTIALS
      slack: {}                                            # SLACK_BOT_TOKEN

Settings hold the names of environment variables, never secrets (channels/common.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from channels.base import Adapter
from channels.common import Section
from channels.email.channel import EmailChannel, EmailSettings
from channels.fcm.channel import PushChannel, PushSettings
from channels.outbox.channel import OutboxChannel, OutboxStore
from channels.registry import Registry
from channels.slack.channel import SlackChannel, SlackSettings
from channels.twilio.client import TwilioSettings
from channels.twilio.sms import SmsChannel, SmsSettings
from channels.twilio.voice import VoiceChannel, VoiceSettings
from channels.twilio.whatsapp import WhatsAppChannel, WhatsAppSettings
from rules.model import Channel

T = TypeVar("T", SmsSettings, VoiceSettings, WhatsAppSettings)


class ProvidersConfig(Section):
    """`providers:` in config.yaml. Every section is optional; an absent one means the outbox."""

    email: EmailSettings | None = None
    sms: SmsSettings | None = None
    voice: VoiceSettings | None = None
    push: PushSettings | None = None
    slack: SlackSettings | None = None
    whatsapp: WhatsAppSettings | None = None

    def sender_numbers(self) -> frozenset[str]:
        """The numbers Twilio sends texts and messages and places calls from, in every Twilio section:
        no tenant may use one as a reply or proxy number (gateway/config.py)."""
        found: set[str] = set()
        for name in type(self).model_fields:
            section = getattr(self, name)
            if isinstance(section, TwilioSettings):
                found.update(s.from_number for s in (section.default, *section.tenants.values()) if s.from_number)
        return frozenset(found)


def build_registry(
    config: ProvidersConfig,
    store: OutboxStore,
    *,
    public_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Registry:
    """The registry for `config`. `public_url` (server.public_url) is where Twilio calls back,
    unless the sms / voice / whatsapp section sets its own. Raises ProviderConfigError for a section that
    cannot work (a missing environment variable or credentials file)."""
    env = os.environ if environ is None else environ
    adapters: dict[Channel, Adapter] = {channel: OutboxChannel(channel, store) for channel in Channel}
    if config.email:
        adapters[Channel.EMAIL] = EmailChannel(config.email, env)
    if config.sms:
        adapters[Channel.SMS] = SmsChannel(_with_url(config.sms, public_url), env)
    if config.voice:
        adapters[Channel.CALL] = VoiceChannel(_with_url(config.voice, public_url), env)
    if config.push:
        adapters[Channel.PUSH] = PushChannel(config.push, env)
    if config.slack:
        adapters[Channel.SLACK] = SlackChannel(config.slack, env)
    if config.whatsapp:
        adapters[Channel.WHATSAPP] = WhatsAppChannel(_with_url(config.whatsapp, public_url), env)
    return Registry(adapters)


def _with_url(settings: T, public_url: str | None) -> T:
    """The section with the server's public URL when it names none of its own."""
    if settings.public_url or not public_url:
        return settings
    return settings.model_copy(update={"public_url": public_url})
