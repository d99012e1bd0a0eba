"""How each channel's addresses are shown in the API and logs: one mask function per channel, owned
by the channel's folder.

The table must name every channel: a channel without a mask function stops Parley at start-up
(importing this module), so a new channel is never shown unmasked by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channels.email import address as email
from channels.fcm import address as fcm
from channels.slack import address as slack
from channels.twilio import address as twilio
from rules.model import Channel

MASKS: Mapping[Channel, Callable[[str], str]] = {
    Channel.EMAIL: email.mask,
    Channel.SMS: twilio.mask,
    Channel.CALL: twilio.mask,
    Channel.PUSH: fcm.mask,
    Channel.SLACK: slack.mask,
    Channel.WHATSAPP: twilio.mask,
}


def unmasked(masks: Mapping[Channel, Callable[[str], str]]) -> list[Channel]:
    return [channel for channel in Channel if channel not in masks]


if missing := unmasked(MASKS):
    raise RuntimeError(f"no mask function for channels: {', '.join(missing)} (channels/addresses.py)")


def mask(channel: Channel, address: str | None) -> str | None:
    """What the API and logs show of an address: enough to recognise it, not to use it."""
    return None if address is None else MASKS[channel](address)
