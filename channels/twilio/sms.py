"""SMS through Twilio's Messages API.

A send is ACCEPTED with the Message SID as provider id; Twilio's status callbacks
(`/webhooks/twilio/status`) then move the delivery to delivered or failed. Errors go
through the shared Twilio table (channels/twilio/client.py); an opted-out recipient is
PERMANENT with reason `opted_out`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twilio.rest import Client

from channels.base import Message, Outcome, Reason, SendResult
from channels.common import E164
from channels.twilio.client import STATUS_PATH, RecordingHttpClient, Twilio, TwilioSettings
from rules.model import Channel


class SmsSettings(TwilioSettings):
    """`providers.sms`: a sender per tenant (a number or a Messaging Service), default for the rest."""


class SmsChannel:
    name = Channel.SMS

    def __init__(
        self, settings: SmsSettings, environ: Mapping[str, str], http_client: RecordingHttpClient | None = None
    ) -> None:
        self.settings = settings
        self.twilio = Twilio(settings, environ, http_client)

    async def send(self, message: Message) -> SendResult:
        if not E164.match(message.address):
            return SendResult.failed(Outcome.PERMANENT, "not an E.164 number", Reason.ADDRESS_INVALID)
        params: dict[str, Any] = {
            "to": message.address,
            "body": message.parts.get("body", ""),
            **self.settings.sender(message.tenant).params(),
        }
        callback = self.settings.webhook(STATUS_PATH)
        if callback:
            params["status_callback"] = callback

        def create(client: Client) -> Any:
            return client.messages.create(**params)

        return await self.twilio.create(create, message.deadline)
