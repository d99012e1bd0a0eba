"""The probe, replayed: tenant globex tries every /v1 route on tenant acme's objects, and forged or
replayed provider webhooks try to act on acme's notifications. Nothing succeeds, nothing changes.

Every operation the API publishes must appear in CROSS below (the first test checks it), so a new
route is tried as the other tenant from the day it is added.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.fixtures import NUMBERS, PROXIES, Harness, intent
from tests.gateway.test_webhooks import inbound, slack_post, twilio_post
from tests.masking.helpers import A, B, open_session

# (method, path template, body): {nid}, {sid} and {number} are acme's.
CROSS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/notifications/{nid}", None),
    ("POST", "/v1/notifications/{nid}/events", {"type": "cancelled"}),
    ("POST", "/v1/events", {"type": "cancelled", "correlation_key": "acme-conversation"}),
    ("GET", "/v1/masked-sessions/{sid}", None),
    ("DELETE", "/v1/masked-sessions/{sid}", None),
    (
        "POST",
        "/v1/calls",
        {"agent": {"id": "agent", "phone": "+14155550177"}, "session_id": "{sid}", "participant_id": "seller-42"},
    ),
    ("DELETE", "/v1/masking/numbers/{number}", None),
    ("POST", "/v1/masking/numbers", {"numbers": ["{number}"]}),
    ("POST", "/v1/masking/numbers", {"numbers": [NUMBERS["acme"]]}),  # acme's reply number
]
# Routes that take no id of another tenant: what they return is checked to hold none of acme's data.
OWN_ONLY = {
    ("GET", "/v1/outbox"), ("GET", "/v1/masking/numbers"), ("GET", "/v1/audit"), ("POST", "/v1/notifications"),
    ("POST", "/v1/masked-sessions"), ("POST", "/v1/templates/{name}/preview"), ("POST", "/v1/admin/rules/reload"),
}  # fmt: skip


@pytest.fixture
def acme(harness: Harness) -> dict[str, str]:
    nid = harness.notify("acme", correlation_key="acme-conversation")
    harness.work()
    opened = open_session(harness, correlation_key="acme-conversation")
    assert opened.status_code == 201, opened.text
    return {"nid": nid, "sid": opened.json()["id"], "number": PROXIES["acme"][0]}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_every_published_route_is_tried_across_tenants(harness: Harness) -> None:
    schema = harness.api.get("/openapi.json").json()
    published = {(m.upper(), _generic(p)) for p, ops in schema["paths"].items() for m in ops if p.startswith("/v1/")}
    tried = {(m, _generic(p)) for m, p, _ in CROSS} | {(m, _generic(p)) for m, p in OWN_ONLY}
    assert not published - tried, f"routes not tried across tenants: {sorted(published - tried)}"


def _generic(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


@pytest.mark.parametrize(("method", "path", "body"), CROSS)
def test_another_tenant_cannot_read_or_change_acmes_objects(
    harness: Harness, acme: dict[str, str], method: str, path: str, body: Any
) -> None:
    before = (harness.show(acme["nid"])["status"], harness.call("GET", f"/v1/masked-sessions/{acme['sid']}").json())
    response = harness.call(method, _fill(path, acme), "globex", json=_fill(body, acme))
    if path == "/v1/events":  # correlation keys are per tenant: globex has no such conversation
        assert response.status_code == 200 and response.json()["stopped"] == [], response.text
    else:
        assert response.status_code in (404, 409), (method, path, response.status_code, response.text)
    assert A["phone"] not in response.text and B["phone"] not in response.text
    after = (harness.show(acme["nid"])["status"], harness.call("GET", f"/v1/masked-sessions/{acme['sid']}").json())
    assert after == before
    pool = harness.call("GET", "/v1/masking/numbers").json()["numbers"]
    assert acme["number"] in {n["number"] for n in pool}


def test_what_another_tenant_lists_holds_nothing_of_acmes(harness: Harness, acme: dict[str, str]) -> None:
    for path in ("/v1/outbox", "/v1/masking/numbers"):
        text = harness.call("GET", path, "globex").text
        assert acme["nid"] not in text and acme["number"] not in text and "seller@example.com" not in text


def test_forged_and_replayed_webhooks_cannot_stop_acmes_notifications(harness: Harness, acme: dict[str, str]) -> None:
    reply = inbound("SM-forged", "yes, still available")
    assert twilio_post(harness, "/webhooks/twilio/sms", reply, token="guessed-token").status_code == 403
    assert twilio_post(harness, "/webhooks/twilio/sms", reply, tamper=True).status_code == 403
    slack = {"actions": [{"action_id": "parley_ack", "value": acme["nid"]}], "user": {"id": "U1"}}
    assert slack_post(harness, slack, secret="guessed-secret").status_code == 403
    assert slack_post(harness, slack, age=3600).status_code == 403
    assert harness.show(acme["nid"])["status"] == "active"


def test_a_notification_of_another_tenant_with_the_same_correlation_key_is_left_alone(
    harness: Harness, acme: dict[str, str]
) -> None:
    other = harness.notify("globex", correlation_key="acme-conversation")
    response = harness.call("POST", "/v1/events", "globex", json={"type": "responded",
                                                                   "correlation_key": "acme-conversation"})  # fmt: skip
    assert response.status_code == 200 and response.json()["stopped"] == [other]
    assert harness.show(acme["nid"])["status"] == "active"


def test_globex_creating_with_acmes_idempotency_key_gets_its_own_notification(
    harness: Harness, acme: dict[str, str]
) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    first = harness.call("POST", "/v1/notifications", "acme", json=intent(), headers=headers).json()["id"]
    second = harness.call("POST", "/v1/notifications", "globex", json=intent(), headers=headers)
    assert second.status_code == 202 and second.json()["id"] != first
    assert harness.call("GET", f"/v1/notifications/{first}", "globex").status_code == 404
