"""Phone calls through Twilio's Calls API.

The call's script comes from our voice webhook (`/webhooks/twilio/voice/outbound`, told the
notification and attempt in its query), or, with `inline_twiml: true`, is the rendered
`speech` part as TwiML `<Say>` in the request itself (no webhook needed, no keypad menu).
A send is ACCEPTED with the Call SID; the status callback reports how the call ended
(completed / busy / no-answer / failed / canceled).
Errors use the same Twilio table as SMS and WhatsApp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import model_validator
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from channels.base import Message, Outcome, Reason, SendResult
from channels.common import ProviderConfigError
from channels.twilio.client import STATUS_PATH, RecordingHttpClient, Twilio, TwilioSettings
from channels.twilio.signature import VOICE_PREFIX
from rules.model import Channel
from rules.phone import SHAPE

VOICE_PATH = f"{VOICE_PREFIX}/outbound"  # served by gateway/http/escalation_calls.py


class VoiceSettings(TwilioSettings):
    """`providers.voice`: caller numbers (no Messaging Service for calls), and where the script comes from."""

    inline_twiml: bool = False  # True: speak the rendered text; False: ask our voice webhook
    language: str | None = None  # <Say language=...> for inline TwiML; default: the message locale
    timeout_ring: int = 30  # seconds to let it ring

    @model_validator(mode="after")
    def _numbers_only(self) -> VoiceSettings:
        senders = [self.default, *self.tenants.values()]
        if any(s.from_number is None for s in senders):
            raise ValueError("calls need from_number (a Messaging Service cannot place calls)")
        return self


class VoiceChannel:
    name = Channel.CALL

    def __init__(
        self, settings: VoiceSettings, environ: Mapping[str, str], http_client: RecordingHttpClient | None = None
    ) -> None:
        if not settings.inline_twiml and not settings.public_url:
            raise ProviderConfigError("providers.voice: set public_url (or server.public_url), or inline_twiml: true")
        self.settings = settings
        self.twilio = Twilio(settings, environ, http_client, section="providers.voice")

    async def send(self, message: Message) -> SendResult:
        if not SHAPE.match(message.address):
            return SendResult.failed(Outcome.PERMANENT, "not an E.164 number", Reason.ADDRESS_INVALID)
        params = self.params(message)

        def create(client: Client) -> Any:
            return client.calls.create(**params)

        return await self.twilio.create(create, message)

    def params(self, message: Message) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {
            "to": message.address,
            "from_": s.sender(message.tenant).from_number,
            "timeout": s.timeout_ring,
        }
        if s.inline_twiml:
            script = VoiceResponse()
            script.say(message.parts.get("speech", ""), language=s.language or message.locale)
            params["twiml"] = str(script)
        else:
            params["url"] = s.webhook(VOICE_PATH, notification=message.notification_id, attempt=message.attempt_key)
        callback = s.webhook(STATUS_PATH)
        if callback:  # Twilio's default events: the final one (completed, busy, no-answer, failed, canceled)
            params["status_callback"] = callback
        return params
