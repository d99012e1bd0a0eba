"""SMS through Twilio's Messages API.

A send is ACCEPTED with the Message SID as provider id; Twilio's status callbacks
(`/webhooks/twilio/status`) then move the delivery to delivered or failed. Errors go
through the shared Twilio table (channels/twilio/client.py); an opted-out recipient is
PERMANENT with reason `opted_out`. The request is built as for WhatsApp
(channels/twilio/messages.py), with plain numbers in `To` and `From`.
"""

from __future__ import annotations

from channels.twilio.client import TwilioSettings
from channels.twilio.messages import MessagesChannel
from rules.model import Channel


class SmsSettings(TwilioSettings):
    """`providers.sms`: a sender per tenant (a number or a Messaging Service), default for the rest."""


class SmsChannel(MessagesChannel[SmsSettings]):
    name = Channel.SMS
    section = "providers.sms"
