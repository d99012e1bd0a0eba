"""The HTTP API's contract: auth, tenant isolation, idempotency, validation errors, reload, health."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import RULES, Harness, intent, write_config


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic YWNtZTp4", "Bearer "])
def test_calls_without_a_valid_key_are_refused(harness: Harness, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = harness.api.post("/v1/notifications", json=intent(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert harness.api.get("/v1/outbox", headers=headers).status_code == 401


def test_a_tenant_never_sees_another_tenants_notifications(harness: Harness) -> None:
    nid = harness.notify("acme")
    harness.work()
    for method, path, body in [
        ("GET", f"/v1/notifications/{nid}", None),
        ("POST", f"/v1/notifications/{nid}/events", {"type": "responded"}),
    ]:
        response = harness.call(method, path, "globex", json=body)
        assert response.status_code == 404, (method, path)
    assert harness.outbox("globex") == []
    assert len(harness.outbox("acme")) == 2
    assert harness.show(nid)["status"] == "active"  # globex's stop attempt changed nothing


def test_idempotency_key_returns_the_first_result_or_409(harness: Harness) -> None:
    headers = {"Idempotency-Key": "order-77"}
    first = harness.call("POST", "/v1/notifications", json=intent(), headers=headers)
    again = harness.call("POST", "/v1/notifications", json=intent(), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == first.json()
    changed = harness.call("POST", "/v1/notifications", json=intent(data={"listing": "Blue bike"}), headers=headers)
    assert changed.status_code == 409
    assert changed.json()["error"] == "idempotency_conflict"
    # the same key from another tenant is another key
    assert harness.call("POST", "/v1/notifications", "globex", json=intent(), headers=headers).status_code == 202
    harness.work()
    assert len(harness.outbox()) == 2  # one notification, two channels: nothing sent twice


def test_an_over_long_idempotency_key_is_refused_before_anything_is_stored(harness: Harness) -> None:
    response = harness.call("POST", "/v1/notifications", json=intent(), headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"path": "header.idempotency-key", "message": "String should have at most 200 characters"}
    ]
    assert (
        harness.call("POST", "/v1/notifications", json=intent(), headers={"Idempotency-Key": "k" * 200}).status_code
        == 202
    )
    harness.work()
    assert len(harness.outbox()) == 2  # only the accepted one was sent


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (intent(recipient={"id": "s", "phone": "+1 555 0100"}), "recipient.phone", "E.164"),
        (intent(recipient={"id": "s", "phone": "4155550123"}), "recipient.phone", "E.164"),
        (intent(recipient={"id": "s", "timezone": "Mars/Olympus"}), "recipient.timezone", "unknown timezone"),
        (intent(event="listing.deleted"), "event", "no policy matches event 'listing.deleted'"),
        (intent(policy="nope"), "policy", "unknown policy 'nope'"),
        (intent(recipient={"id": "s", "fax": "+14155550123"}), "recipient.fax", "unknown field"),
        ({"recipient": {"id": "s"}}, "event", "Field required"),
    ],
)
def test_bad_intents_get_422_naming_the_field(
    harness: Harness, body: dict[str, object], path: str, fragment: str
) -> None:
    response = harness.call("POST", "/v1/notifications", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["path"] == path and fragment in d["message"] for d in detail), detail
    assert harness.work() == 0


def test_malformed_json_is_a_422_not_a_crash(harness: Harness) -> None:
    response = harness.call(
        "POST", "/v1/notifications", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_failed"


def test_reload_with_a_broken_file_keeps_the_old_rules(harness: Harness, tmp_path: Path) -> None:
    broken = RULES.replace("wait: 15m", "wait: 15 minutes")
    write_config(harness.settings.path.parent, broken)
    response = harness.call("POST", "/v1/admin/rules/reload", "ops")
    assert response.status_code == 422
    messages = response.json()["messages"]
    assert len(messages) == 1
    assert "rules.policies[0].steps[1].wait: invalid duration '15 minutes'" in messages[0]
    assert messages[0].startswith(f"{harness.settings.path}:")
    assert harness.notify()  # still served by the rules in force
    assert harness.call("GET", "/readyz").json()["rules"] is True


def test_reload_applies_a_valid_file_and_escalations_in_flight_keep_their_version(harness: Harness) -> None:
    nid = harness.notify()
    before = harness.show(nid)["policy"]["version"]
    write_config(harness.settings.path.parent, RULES.replace("wait: 15m", "wait: 30m"))
    assert harness.call("POST", "/v1/admin/rules/reload", "acme").status_code == 403  # not an admin tenant
    response = harness.call("POST", "/v1/admin/rules/reload", "ops")
    assert response.status_code == 200
    assert response.json()["policies"]["inquiry"] != before
    harness.work()
    from datetime import timedelta

    harness.at(timedelta(minutes=15))  # the old version's 15 minutes still apply to it
    assert harness.sent(nid)[-1] == ("sms", "inquiry-reminder")
    newer = harness.notify()
    assert harness.show(newer)["policy"]["version"] == response.json()["policies"]["inquiry"]


def test_health_readiness_and_metrics(harness: Harness) -> None:
    assert harness.api.get("/healthz").json() == {"status": "ok"}
    assert harness.api.get("/readyz").json() == {"ready": True, "redis": True, "rules": True}
    harness.notify()
    harness.work()
    text = harness.api.get("/metrics").text
    assert "parley_intents_accepted_total 1.0" in text
    assert 'parley_sends_total{channel="email",outcome="delivered"} 1.0' in text
    assert "parley_timer_lateness_seconds_count 1.0" in text
    assert "parley_due_notifications 1.0" in text


def test_sighup_reloads_and_tells_the_other_api_processes(harness: Harness) -> None:
    import os
    import signal
    import time

    before = harness.holder.current.versions["inquiry"]  # type: ignore[union-attr]
    write_config(harness.settings.path.parent, RULES.replace("wait: 15m", "wait: 20m"))
    previous = signal.getsignal(signal.SIGHUP)
    harness.holder.listen_for_hangup()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 5
        told = lambda: int(harness.redis.get("parley:rules:generation") or 0) == 1  # noqa: E731
        while (harness.holder.current.versions["inquiry"] == before or not told()) and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert harness.holder.current.versions["inquiry"] != before  # type: ignore[union-attr]
    assert int(harness.redis.get("parley:rules:generation") or 0) == 1  # the others are told
