"""Signed Twilio webhook calls and TwiML parsing for the masking tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from tests.fixtures import TWILIO_TOKEN, Harness

A = {"id": "buyer-7", "phone": "+14155550199"}
B = {"id": "seller-42", "phone": "+4915112345678", "locale": "de"}


def signed(harness: Harness, path: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> Any:
    url = f"http://testserver{path}"
    headers = {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form),
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    return harness.api.post(path, content=urlencode(form), headers=headers)


def twiml(response: Any) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def open_session(
    harness: Harness, a: dict[str, str] = A, b: dict[str, str] = B, tenant: str = "acme", **extra: Any
) -> Any:
    return harness.call("POST", "/v1/masked-sessions", tenant, json={"participants": [a, b], **extra})


def call(harness: Harness, caller: str, proxy: str, sid: str = "CA1") -> ET.Element:
    return twiml(signed(harness, "/webhooks/twilio/voice", {"CallSid": sid, "From": caller, "To": proxy}))
