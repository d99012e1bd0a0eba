"""Routing masked calls and texts: TwiML asserted as XML, signatures checked, expiry honoured."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.fixtures import Harness
from tests.masking.helpers import A, B, call, open_session, signed, twiml


def _proxies(session: dict[str, Any]) -> dict[str, str]:
    return {p["id"]: p["proxy"] for p in session["participants"]}


def test_a_call_to_my_proxy_rings_the_other_participant_showing_their_proxy(harness: Harness) -> None:
    session = open_session(harness).json()
    proxies = _proxies(session)
    xml = call(harness, A["phone"], proxies["buyer-7"])
    dial = xml.find("Dial")
    assert dial is not None and dial.find("Number") is not None
    assert dial.find("Number").text == B["phone"]  # type: ignore[union-attr]
    assert dial.get("callerId") == proxies["seller-42"]  # B sees B's proxy for A, and can call it back
    back = call(harness, B["phone"], proxies["seller-42"], sid="CA2").find("Dial")
    assert back is not None and back.find("Number").text == A["phone"]  # type: ignore[union-attr]
    assert back.get("callerId") == proxies["buyer-7"]
    interactions = harness.call("GET", f"/v1/masked-sessions/{session['id']}").json()["interactions"]
    assert [i["direction"] for i in interactions] == ["buyer-7 -> seller-42", "seller-42 -> buyer-7"]


def test_recorded_sessions_announce_it_and_record_both_legs(harness: Harness) -> None:
    session = open_session(harness, record=True).json()
    xml = call(harness, B["phone"], _proxies(session)["seller-42"])
    assert "aufgezeichnet" in (xml.find("Say").text or "")  # type: ignore[union-attr]  # in the caller's language
    dial = xml.find("Dial")
    assert dial is not None and dial.get("record") == "record-from-answer-dual"
    assert "/webhooks/twilio/voice/recording?session=" in (dial.get("recordingStatusCallback") or "")
    response = signed(harness, f"/webhooks/twilio/voice/recording?session={session['id']}",
                      {"CallSid": "CA1", "RecordingUrl": "https://api.twilio.com/rec/RE1"})  # fmt: skip
    assert response.status_code == 204
    interactions = harness.call("GET", f"/v1/masked-sessions/{session['id']}").json()["interactions"]
    assert interactions[0]["recording_url"] == "https://api.twilio.com/rec/RE1"


@pytest.mark.parametrize("case", ["unknown_caller", "closed", "expired", "wrong_proxy"])
def test_no_open_session_means_a_polite_message_and_never_a_connection(harness: Harness, case: str) -> None:
    session = open_session(harness, ttl="1h").json()
    proxies = _proxies(session)
    caller, proxy = A["phone"], proxies["buyer-7"]
    if case == "unknown_caller":
        caller = "+14155550777"
    elif case == "closed":
        harness.call("DELETE", f"/v1/masked-sessions/{session['id']}")
    elif case == "expired":
        harness.clock.advance(timedelta(hours=1))  # expiry mid-conversation: the next call is refused
    else:
        proxy = next(p for p in ("+14155550150", "+14155550151", "+4930901820") if p != proxy)
    xml = call(harness, caller, proxy)
    assert xml.find("Dial") is None
    assert xml.find("Say") is not None and xml.find("Hangup") is not None


def test_a_forged_signature_is_refused(harness: Harness) -> None:
    session = open_session(harness).json()
    form = {"CallSid": "CA1", "From": A["phone"], "To": _proxies(session)["buyer-7"]}
    assert signed(harness, "/webhooks/twilio/voice", form, token="forged").status_code == 403
    assert harness.call("GET", f"/v1/masked-sessions/{session['id']}").json()["interactions"] == []


def test_a_text_to_a_proxy_is_relayed_from_the_other_proxy_and_counts_as_a_response(harness: Harness) -> None:
    session = open_session(harness, correlation_key="conversation:5").json()
    proxies = _proxies(session)
    nid = harness.notify(correlation_key="conversation:5")
    form = {"MessageSid": "SM1", "From": B["phone"], "To": proxies["seller-42"], "Body": "Ja, noch da!"}
    assert signed(harness, "/webhooks/twilio/sms", form).status_code == 200
    relayed = harness.outbox()[0]
    assert (relayed["address"], relayed["from"], relayed["content"]["body"]) == (
        A["phone"],
        proxies["buyer-7"],
        "Ja, noch da!",
    )
    assert harness.show(nid)["status"] == "stopped"
    ended = signed(harness, "/webhooks/twilio/sms", dict(form, From="+14155550777", MessageSid="SM2"))
    assert "conversation has ended" in ended.text


def test_click_to_call_shows_the_agent_only_ids_and_proxies(harness: Harness) -> None:
    session = open_session(harness).json()
    agent = {"id": "agent-3", "phone": "+14155550888"}
    response = harness.call(
        "POST", "/v1/calls", json={"agent": agent, "session_id": session["id"], "participant_id": "seller-42"}
    )
    assert response.status_code == 201
    assert B["phone"] not in response.text and A["phone"] not in response.text
    assert response.json()["participant"] == {"id": "seller-42", "proxy": _proxies(session)["seller-42"]}
    ring = harness.outbox()[0]
    assert (ring["channel"], ring["address"], ring["from"]) == ("call", agent["phone"], _proxies(session)["seller-42"])
    url = ring["content"]["url"].removeprefix("http://testserver")
    xml = twiml(signed(harness, url, {"CallSid": "CA9", "From": _proxies(session)["seller-42"], "To": agent["phone"]}))
    dial = xml.find("Dial")
    assert dial is not None and dial.find("Number").text == B["phone"]  # type: ignore[union-attr]
    assert dial.get("callerId") == _proxies(session)["seller-42"]
