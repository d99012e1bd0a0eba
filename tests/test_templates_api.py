"""POST /v1/templates/{name}/preview through the real API, and SMS info recorded on deliveries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures import Harness, intent


def preview(harness: Harness, name: str, body: dict[str, Any], tenant: str = "acme") -> Any:
    return harness.call("POST", f"/v1/templates/{name}/preview", tenant, json=body)


def test_preview_shows_exactly_what_would_be_sent(harness: Harness) -> None:
    response = preview(harness, "inquiry-new", {"channel": "sms", "locale": "zh-CN", "intent": intent()})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "template": "inquiry-new",
        "channel": "sms",
        "locale": "zh",
        "parts": {"body": "Parley：有人询问“Red bike”：Is it still available? 请在应用中回复。"},  # noqa: RUF001
        "sms": {"encoding": "UCS-2", "segments": 1, "units": 53, "characters": 53, "truncated": False},
    }


def test_preview_uses_the_recipients_locale_by_default(harness: Harness) -> None:
    body = intent(recipient={"id": "s", "locale": "de-AT", "timezone": "Europe/Vienna"})
    response = preview(harness, "inquiry-new", {"channel": "push", "intent": body})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["locale"], result["sms"]) == ("de", None)
    assert result["parts"]["title"] == "Neue Frage zu Red bike"
    assert json.loads(result["parts"]["data"]) == {"type": "inquiry", "listing": "Red bike"}


def test_preview_renders_data_inert(harness: Harness) -> None:
    data = {"listing": "<!channel> {{ 7*7 }}", "message": "<b>hi</b>"}
    email = preview(harness, "inquiry-new", {"channel": "email", "intent": intent(data=data)}).json()["parts"]
    assert "<strong>&lt;!channel&gt; {{ 7*7 }}</strong>" in email["html"]
    assert "&lt;b&gt;hi&lt;/b&gt;" in email["html"] and "<b>hi</b>" in email["text"]
    slack = preview(harness, "inquiry-unanswered-ops", {"channel": "slack", "intent": intent(data=data)}).json()
    assert "*&lt;!channel&gt; {{ 7*7 }}*" in slack["parts"]["text"]
    assert "<!channel>" not in slack["parts"]["blocks"]


@pytest.mark.parametrize(
    ("name", "body", "status", "error", "message"),
    [
        ("nope", {"channel": "sms", "intent": intent()}, 404, "not_found", "unknown template 'nope'"),
        ("inquiry-new", {"channel": "sms", "intent": intent(data={"listing": "x"})}, 422, "render_failed",
         "inquiry-new/en/sms.txt:1: data.message is undefined: the intent's data has no 'message'"),
        ("inquiry-call", {"channel": "slack", "intent": intent()}, 422, "render_failed",
         "template 'inquiry-call' has no slack part (slack.txt) for locale 'en' or its fallbacks (en)"),
        ("inquiry-new", {"channel": "fax", "intent": intent()}, 422, "validation_failed", "channel: "),
        ("inquiry-new", {"channel": "sms", "intent": {"event": "x"}}, 422, "validation_failed", "intent.recipient"),
        ("inquiry-new", {"channel": "sms", "locale": "not a locale", "intent": intent()}, 422, "validation_failed",
         "locale: "),
    ],
)  # fmt: skip
def test_preview_errors_are_clear(
    harness: Harness, name: str, body: dict[str, Any], status: int, error: str, message: str
) -> None:
    response = preview(harness, name, body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert message in response.json()["message"]


def test_preview_needs_a_key(harness: Harness) -> None:
    response = harness.api.post("/v1/templates/inquiry-new/preview", json={"channel": "sms", "intent": intent()})
    assert response.status_code == 401


def test_sms_deliveries_record_encoding_and_segments(harness: Harness) -> None:
    nid = harness.notify(event="quick.ping", data={"listing": "Red bike", "message": "x" * 200})
    harness.work()
    deliveries = harness.show(nid)["deliveries"]
    sms = next(d for d in deliveries if d["channel"] == "sms")
    email = next(d for d in deliveries if d["channel"] == "email")
    assert sms["status"] == "delivered", sms
    assert sms["sms"] == {"encoding": "GSM-7", "segments": 2}
    assert email["sms"] is None
