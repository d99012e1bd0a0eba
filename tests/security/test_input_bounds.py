"""Bad input gets a 4xx that says what and where, never a 500 (issue 15, finding 5).

Every request goes through the real API; a 500 would surface here as the server's exception.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures import Harness, intent
from tests.masking.helpers import A, B

JSON = {"Content-Type": "application/json"}
SESSION = {"participants": [A, B]}


def escaped(body: dict[str, Any]) -> bytes:
    """The body as JSON with non-ASCII written as \\u escapes: how a lone surrogate travels."""
    return json.dumps(body, ensure_ascii=True).encode()


def problems(response: Any, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == "validation_failed", body
    return {d["path"]: d["message"] for d in body["detail"]}


def nested(depth: int) -> dict[str, Any]:
    """A `data` object `depth` levels deep (data itself is the first)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"next": value}
    return value


@pytest.mark.parametrize("ttl", ["2000000d", "3000000d", "999999999999999d", "91d", "2160h1s"])
def test_a_masked_session_lives_at_most_90_days(harness: Harness, ttl: str) -> None:
    found = problems(harness.call("POST", "/v1/masked-sessions", json={**SESSION, "ttl": ttl}))
    assert "at most 90 days" in found["ttl"], found


def test_a_90_day_session_is_still_accepted(harness: Harness) -> None:
    response = harness.call("POST", "/v1/masked-sessions", json={**SESSION, "ttl": "90d"})
    assert response.status_code == 201, response.text
    assert response.json()["expires_at"] == "2027-02-21T10:00:00.000Z"


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/v1/templates/inquiry-new/preview",
         {"channel": "sms", "intent": intent(data={"listing": "Red bike\ud800", "message": "hi"})},
         "intent.data.listing"),
        ("/v1/events", {"type": "responded", "correlation_key": "booking-\udc00"}, "correlation_key"),
        ("/v1/notifications", intent(data={"listing": ["ok", "\ud800"]}), "data.listing[1]"),
        ("/v1/notifications", intent(data={"\ud800": "key"}), "data"),
        ("/v1/masked-sessions", {**SESSION, "correlation_key": "c\ud83d"}, "correlation_key"),
    ],
)  # fmt: skip
def test_lone_surrogates_are_refused_with_their_place(
    harness: Harness, path: str, body: dict[str, Any], where: str
) -> None:
    found = problems(harness.call("POST", path, content=escaped(body), headers=JSON))
    assert "lone surrogate" in found[where], found
    assert harness.work() == 0  # nothing was stored


def test_a_surrogate_pair_is_one_character_and_welcome(harness: Harness) -> None:
    body = escaped(intent(data={"listing": "Red bike \U0001f6b2", "message": "ok?"}))
    assert b"\\ud83d\\udeb2" in body
    assert harness.call("POST", "/v1/notifications", content=body, headers=JSON).status_code == 202
    preview = {"channel": "sms", "intent": intent(data={"listing": "Red bike \U0001f6b2", "message": "ok?"})}
    response = harness.call("POST", "/v1/templates/inquiry-new/preview", content=escaped(preview), headers=JSON)
    assert response.status_code == 200, response.text
    assert "\U0001f6b2" in response.json()["parts"]["body"]


@pytest.mark.parametrize("timezone", ["A" * 300, "Europe/" + "x" * 100, "America", "Europe"])
def test_a_bad_timezone_is_a_422_naming_it(harness: Harness, timezone: str) -> None:
    body = intent(recipient={"id": "seller-42", "email": "s@example.com", "timezone": timezone})
    found = problems(harness.call("POST", "/v1/notifications", json=body))
    assert "recipient.timezone" in found, found


@pytest.mark.parametrize(
    ("method", "path", "body", "where", "bound"),
    [
        ("POST", "/v1/events", {"type": "responded", "correlation_key": "k" * 257}, "correlation_key", "256"),
        ("POST", "/v1/notifications", intent(recipient={"id": "s", "locale": "en" + "-abcdefgh" * 4}),
         "recipient.locale", "35"),
        ("POST", "/v1/notifications", intent(counterpart={"id": "b", "phone": "+1" + "4" * 40}),
         "counterpart.phone", "32"),
        ("POST", "/v1/templates/inquiry-new/preview",
         {"channel": "sms", "locale": "de" + "-abcdefgh" * 4, "intent": intent()}, "locale", "35"),
        ("POST", "/v1/notifications", intent(data=nested(11)), "data", "10 levels"),
        ("POST", "/v1/masked-sessions", {**SESSION, "ttl": "1" * 40 + "s"}, "ttl", "16"),
        ("GET", "/v1/outbox?limit=1001", None, "query.limit", "1000"),
        ("GET", "/v1/outbox?limit=0", None, "query.limit", "1"),
        ("GET", "/v1/notifications/n_" + "0" * 100, None, "path.nid", "64"),
        ("GET", "/v1/masked-sessions/ms_" + "0" * 100, None, "path.sid", "64"),
    ],
)  # fmt: skip
def test_every_field_has_an_upper_bound(
    harness: Harness, method: str, path: str, body: dict[str, Any] | None, where: str, bound: str
) -> None:
    found = problems(harness.call(method, path, json=body))
    assert bound in found.get(where, ""), found


def test_data_ten_levels_deep_is_accepted(harness: Harness) -> None:
    body = intent(data={"listing": "Red bike", "message": "hi", "extra": nested(9)})
    assert harness.call("POST", "/v1/notifications", json=body).status_code == 202


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/json-patch", "application/json; charset=latin-1", None],
)  # fmt: skip
@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/notifications", intent()), ("/v1/events", {"type": "responded", "correlation_key": "k"}),
     ("/v1/masked-sessions", SESSION)],
)  # fmt: skip
def test_json_routes_refuse_other_media_types_with_415(
    harness: Harness, content_type: str | None, path: str, body: dict[str, Any]
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = harness.call("POST", path, content=json.dumps(body), headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert harness.work() == 0


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.parley+json"])
def test_json_with_a_charset_or_a_json_suffix_is_json(harness: Harness, content_type: str) -> None:
    response = harness.call(
        "POST", "/v1/notifications", content=json.dumps(intent()), headers={"Content-Type": content_type}
    )
    assert response.status_code == 202, response.text


DEEP = b"[" * 5000 + b'"\\ud800"' + b"]" * 5000  # deeper than Python's parser goes, a lone surrogate inside


@pytest.mark.parametrize("path", ["/v1/events", "/v1/notifications", "/v1/templates/inquiry-new/preview"])
@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b'{"type": "responded", "correlation_key": ', "Invalid JSON"),
     (b'{"type": "responded", "correlation_key": "\xff\xfe"}', ""),  # not UTF-8
     (b"[1, 2", "Invalid JSON"),
     (DEEP, "")],
)  # fmt: skip
def test_a_body_that_does_not_parse_is_a_validation_error_of_the_body(
    harness: Harness, path: str, content: bytes, fragment: str
) -> None:
    found = problems(harness.call("POST", path, content=content, headers=JSON))
    assert list(found) == ["(body)"], found
    assert fragment in found["(body)"], found


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("DELETE", "/v1/outbox", {"GET"}),
     ("PUT", "/v1/masking/numbers", {"GET", "POST"}),
     ("PATCH", "/v1/masked-sessions/ms_1", {"GET", "DELETE"}),
     ("GET", "/v1/events", {"POST"})],
)  # fmt: skip
def test_405_says_which_methods_the_path_has(harness: Harness, method: str, path: str, allowed: set[str]) -> None:
    response = harness.call(method, path)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
