"""A policy's `call` step: answering counts as a response, pressing 1 bridges to the counterpart, masked."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.fixtures import Harness
from tests.masking.helpers import A, B, call, open_session, signed, twiml


def test_answering_the_escalation_call_responds_and_pressing_1_bridges(harness: Harness) -> None:
    nid = harness.notify(event="call.me")
    harness.work()
    placed = harness.outbox()[0]
    assert (placed["channel"], placed["address"]) == ("call", "+14155550123")
    path = f"/webhooks/twilio/voice/outbound?notification={nid}&attempt=0.0.call"
    xml = twiml(signed(harness, path, {"CallSid": "CA5", "From": "+14155550150", "To": "+14155550123"}))
    gather = xml.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert "Press 1" in (gather.find("Say").text or "")  # type: ignore[union-attr]
    assert harness.show(nid)["status"] == "stopped"  # answering is a response
    press = f"/webhooks/twilio/voice/outbound/press?notification={nid}&attempt=0.0.call"
    bridged = twiml(
        signed(harness, press, {"CallSid": "CA5", "Digits": "1", "From": "+14155550150", "To": "+14155550123"})
    )
    dial = bridged.find("Dial")
    assert dial is not None and dial.find("Number").text == "+14155550199"  # type: ignore[union-attr]
    assert dial.get("callerId") == "+14155550150"  # the counterpart sees our number, not the seller's
    harness.at(timedelta(minutes=10))
    assert [m["channel"] for m in harness.outbox()] == ["call"]  # the SMS reminder never went out
    other_key = twiml(
        signed(harness, press, {"CallSid": "CA5", "Digits": "2", "From": "+14155550150", "To": "+14155550123"})
    )
    assert other_key.find("Dial") is None


def test_no_real_number_reaches_an_api_body_or_a_log_line(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = []
    session = open_session(harness, correlation_key="c:1", record=True)
    bodies.append(session.text)
    proxies = {p["id"]: p["proxy"] for p in session.json()["participants"]}
    call(harness, A["phone"], proxies["buyer-7"])
    call(harness, "+14155550777", proxies["buyer-7"])  # an unknown caller
    signed(
        harness,
        "/webhooks/twilio/sms",
        {"MessageSid": "SM1", "From": A["phone"], "To": proxies["buyer-7"], "Body": "hi"},
    )
    agent = {"id": "agent-1", "phone": "+14155550888"}
    bodies.append(
        harness.call(
            "POST", "/v1/calls", json={"agent": agent, "session_id": session.json()["id"], "participant_id": "buyer-7"}
        ).text
    )
    bodies.append(harness.call("GET", f"/v1/masked-sessions/{session.json()['id']}").text)
    bodies.append(harness.call("DELETE", f"/v1/masked-sessions/{session.json()['id']}").text)
    nid = harness.notify(event="call.me", recipient={"id": "s", "phone": B["phone"], "timezone": "UTC"}, counterpart=A)
    harness.work()
    bodies.append(harness.call("GET", f"/v1/notifications/{nid}").text)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for number in (A["phone"], B["phone"], agent["phone"], "+14155550777"):
        for body in bodies:
            assert number not in body
        assert number not in logs, number
    assert proxies["buyer-7"] in bodies[0]  # proxies are what the tenant and agents see
