"""WhatsApp through Twilio's Messages API: the SMS request, with channel addresses.

`To` is `whatsapp:+<E.164>` (the person's `whatsapp` number, never their `phone`), `From` the
tenant's WhatsApp-enabled Twilio number as `whatsapp:+<E.164>`, or a Messaging Service whose pool
holds a WhatsApp sender. The body is the rendered `body` part (`whatsapp.txt`, else `sms.txt`:
channels/rendering/parts.py). A send is ACCEPTED with the Message SID; Twilio's status callbacks
(`/webhooks/twilio/status`, as for SMS) move it to delivered (`delivered`, `read`) or failed.

This is a free-form (session) message: WhatsApp delivers it only within 24 hours of the
recipient's last message to the sender. Outside that window Twilio accepts the request and
then reports the message `undelivered` with error 63016, and the policy's fallback runs.
Approved content templates (`ContentSid`) are not sent. Errors go through the Twilio table.
"""

from __future__ import annotations

from channels.twilio.client import TwilioSettings
from channels.twilio.messages import MessagesChannel
from rules.model import Channel

PREFIX = "whatsapp:"


class WhatsAppSettings(TwilioSettings):
    """`providers.whatsapp`: a WhatsApp sender per tenant (a WhatsApp-enabled number, written without
    the `whatsapp:` prefix, or a Messaging Service with a WhatsApp sender), default for the rest."""


class WhatsAppChannel(MessagesChannel[WhatsAppSettings]):
    name = Channel.WHATSAPP
    prefix = PREFIX
    section = "providers.whatsapp"
