"""`parley simulate` on the shipped config.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
START = "2026-03-10T10:00:00Z"  # 11:00 in Berlin, outside the 21:00-08:00 quiet hours

SELLER = {
    "id": "seller-1",
    "email": "seller@example.com",
    "phone": "+14155550123",
    "push_tokens": ["token-1"],
    "timezone": "Europe/Berlin",
}
BUYER = {"id": "buyer-1", "phone": "+14155550124"}


def write_intent(tmp_path: Path, **fields: Any) -> Path:
    body = {"event": "inquiry.created", "recipient": SELLER, "counterpart": BUYER, **fields}
    path = tmp_path / "intent.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def simulate(
    capsys: pytest.CaptureFixture[str], intent: Path, *extra: str, as_json: bool = True
) -> tuple[int, Any, str]:
    argv = ["simulate", "--rules", str(CONFIG), "--intent", str(intent), "--at", START, *extra]
    code = main([*argv, "--json"] if as_json else argv)
    out, err = capsys.readouterr()
    return code, json.loads(out) if as_json and code == 0 else out, err


def rows(timeline: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["at"], e["step"], e["action"], e["channel"], e["to"], e["reason"]) for e in timeline]


def test_json_shape_and_full_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = simulate(capsys, write_intent(tmp_path))
    assert (code, err) == (0, "")
    assert set(doc) == {"policy", "timeline"}
    assert doc["policy"] == "inquiry-unanswered"
    for entry in doc["timeline"]:
        assert {"at", "step", "action", "channel", "to", "template", "reason"} <= set(entry)
    assert rows(doc["timeline"]) == [
        ("2026-03-10T10:00:00Z", 0, "send", "push", "recipient", None),
        ("2026-03-10T10:00:00Z", 0, "send", "email", "recipient", None),
        ("2026-03-10T10:15:00Z", 2, "send", "sms", "recipient", None),
        ("2026-03-10T11:15:00Z", 4, "call", "call", "recipient", None),
        ("2026-03-10T13:15:00Z", 6, "send", "slack", "ops-slack", None),
        ("2026-03-10T13:15:00Z", None, "complete", None, None, None),
    ]
    assert [e["template"] for e in doc["timeline"]] == [
        "inquiry-new",
        "inquiry-new",
        "inquiry-reminder",
        "inquiry-call",
        "inquiry-unanswered-ops",
        None,
    ]
    assert doc["timeline"][3]["bridge"] == "counterpart"


def test_respond_at_a_duration_stops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = simulate(capsys, write_intent(tmp_path), "--respond-at", "20m")
    assert code == 0
    assert rows(doc["timeline"])[-2:] == [
        ("2026-03-10T10:15:00Z", 2, "send", "sms", "recipient", None),
        ("2026-03-10T10:20:00Z", None, "stop", None, None, "responded"),
    ]
    assert len(doc["timeline"]) == 4


def test_respond_at_an_iso_time_exactly_when_a_step_falls_due(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, _ = simulate(capsys, write_intent(tmp_path), "--respond-at", "2026-03-10T11:15:00+01:00")
    assert code == 0  # 10:15Z: the sms due then is not sent
    assert rows(doc["timeline"])[-1] == ("2026-03-10T10:15:00Z", None, "stop", None, None, "responded")
    assert [e["channel"] for e in doc["timeline"][:-1]] == ["push", "email"]


def test_fail_shows_the_fallback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = simulate(capsys, write_intent(tmp_path), "--fail", "sms")
    assert code == 0
    sms, fallback = doc["timeline"][2:4]
    assert (sms["channel"], sms["outcome"]) == ("sms", "failed")
    assert rows([fallback]) == [("2026-03-10T10:15:00Z", 2, "send", "email", "recipient", "fallback")]
    assert (fallback["instead_of"], fallback["template"]) == ("sms", "inquiry-reminder")


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = simulate(capsys, write_intent(tmp_path), "--fail", "sms", "--respond-at", "20m", as_json=False)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "policy inquiry-unanswered (event inquiry.created)"
    assert lines[3].startswith("2026-03-10T10:15:00Z")
    assert "step 2" in lines[3] and "sms" in lines[3] and "FAILED" in lines[3]
    assert "email" in lines[4] and "fallback; instead of sms" in lines[4]
    assert lines[-1].split() == ["2026-03-10T10:20:00Z", "stop", "(responded)"]


def test_quiet_hours_in_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--rules", str(CONFIG), "--intent", str(write_intent(tmp_path)), "--at", "2026-03-10T19:50:00Z"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2026-03-11T07:00:00Z" in out and "deferred from 2026-03-10T20:05:00Z" in out


def test_no_matching_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = simulate(capsys, write_intent(tmp_path, event="review.posted"))
    assert (code, out) == (1, "")
    assert "no policy matches event 'review.posted'" in err


def test_invalid_intent_names_the_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**SELLER, "phone": "+1 555", "timezone": "Mars/Olympus_Mons"}
    code, out, err = simulate(capsys, write_intent(tmp_path, recipient=bad))
    assert (code, out) == (1, "")
    assert "invalid intent" in err
    assert "recipient.phone:" in err
    assert "recipient.timezone:" in err and "Mars/Olympus_Mons" in err
