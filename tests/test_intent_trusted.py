"""Intents Parley stored itself load without re-running the phone and timezone validators."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from gateway.state.records import Stored
from rules.intent import TRUSTED, Intent

BODY = {"event": "e", "recipient": {"id": "u", "phone": "+14155550123", "timezone": "Europe/Berlin"}}


def test_a_new_intent_is_validated() -> None:
    for bad in ({"phone": "+1415555012"}, {"phone": "0049 30 1234567"}, {"timezone": "Mars/Olympus"}):
        with pytest.raises(ValidationError):
            Intent.model_validate({**BODY, "recipient": {"id": "u", **bad}})
    assert Intent.model_validate(BODY).recipient.phone == "+14155550123"


def test_a_stored_intent_loads_as_it_was_stored() -> None:
    text = Intent.model_validate(BODY).model_dump_json(exclude_defaults=True)
    assert Intent.model_validate_json(text, context=TRUSTED) == Intent.model_validate_json(text)
    # the cheap structural checks still hold: a stored intent is still an intent
    with pytest.raises(ValidationError):
        Intent.model_validate_json(json.dumps({**BODY, "extra": 1}), context=TRUSTED)
    raw = {"tenant": "t", "status": "active", "policy": "p", "version": "v", "intent": text, "created_ms": "0"}
    assert Stored.from_hash("n", raw).intent.recipient.timezone == "Europe/Berlin"
