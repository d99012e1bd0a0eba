"""Every channel finds a person's address and shows it masked: no silent default for a channel."""

from __future__ import annotations

import pytest

from channels.addresses import MASKS, mask, unmasked
from rules.intent import Person
from rules.model import Channel

PERSON = Person(
    id="seller-42", email="seller@example.com", phone="+14155550123", push_tokens=["fcm-token-abcdef123456"],
    slack="#ops", whatsapp="+4915112345678",
)  # fmt: skip
ADDRESSES = {
    Channel.EMAIL: "seller@example.com",
    Channel.SMS: "+14155550123",
    Channel.CALL: "+14155550123",
    Channel.PUSH: "fcm-token-abcdef123456",
    Channel.SLACK: "#ops",
    Channel.WHATSAPP: "+4915112345678",
}
PRIVATE = {
    Channel.EMAIL,
    Channel.SMS,
    Channel.CALL,
    Channel.PUSH,
    Channel.WHATSAPP,
}  # contact data; a Slack channel name is not


def test_every_channel_reads_its_own_address_of_a_person() -> None:
    assert {channel: PERSON.address(channel) for channel in Channel} == ADDRESSES


@pytest.mark.parametrize("channel", sorted(PRIVATE))
def test_a_private_address_is_never_shown_whole(channel: Channel) -> None:
    shown = mask(channel, ADDRESSES[channel])
    assert shown is not None and ADDRESSES[channel] not in shown


def test_masks_keep_enough_to_recognise_the_address() -> None:
    assert mask(Channel.EMAIL, "seller@example.com") == "s***@example.com"
    assert mask(Channel.SMS, "+14155550123") == "+141******23"
    assert mask(Channel.PUSH, "fcm-token-abcdef123456") == "token …123456"
    assert mask(Channel.SLACK, "#ops") == "#ops"
    assert mask(Channel.EMAIL, None) is None


def test_a_channel_without_a_mask_function_is_named_as_missing() -> None:
    table = {c: f for c, f in MASKS.items() if c is not Channel.PUSH}
    assert unmasked(table) == [Channel.PUSH]
    assert unmasked(MASKS) == []  # what the start-up check (importing channels.addresses) requires
