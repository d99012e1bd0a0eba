"""What SMS and WhatsApp share: a text through Twilio's Messages API.

Both send `messages.create(to, body, from_ | messaging_service_sid, status_callback)` through the
shared client (channels/twilio/client.py: its error table, its lease check); they differ only in
the channel address Twilio reads from `To` and `From`: a plain E.164 number for SMS,
`whatsapp:+E.164` for WhatsApp (twilio.com/docs/messaging/channels). A Messaging Service sends
on the channel `To` names, from a sender in its pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from twilio.rest import Client

from channels.base import Message, Outcome, Reason, SendResult
from channels.twilio.client import STATUS_PATH, RecordingHttpClient, Twilio, TwilioSettings
from rules.model import Channel
from rules.phone import SHAPE

S = TypeVar("S", bound=TwilioSettings)


class MessagesChannel(Generic[S]):
    """A channel of Twilio's Messages API, with its settings `S`. `prefix` is its channel address prefix
    ("" for SMS)."""

    name: Channel
    prefix: str = ""
    section: str  # the configuration section, for messages about it

    def __init__(self, settings: S, environ: Mapping[str, str], http_client: RecordingHttpClient | None = None) -> None:
        self.settings = settings
        self.twilio = Twilio(settings, environ, http_client, section=self.section)

    async def send(self, message: Message) -> SendResult:
        if not SHAPE.match(message.address):
            return SendResult.failed(Outcome.PERMANENT, "not an E.164 number", Reason.ADDRESS_INVALID)
        params = self.params(message)

        def create(client: Client) -> Any:
            return client.messages.create(**params)

        return await self.twilio.create(create, message)

    def params(self, message: Message) -> dict[str, Any]:
        """The arguments of `messages.create` for `message` (its address already checked)."""
        params: dict[str, Any] = {
            "to": self.prefix + message.address,
            "body": message.parts.get("body", ""),
            **self.settings.sender(message.tenant).params(self.prefix),
        }
        callback = self.settings.webhook(STATUS_PATH)
        if callback:
            params["status_callback"] = callback
        return params
