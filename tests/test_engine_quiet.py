"""Quiet hours: deferral across midnight and DST changes, urgent steps, and `defer` itself."""

from __future__ import annotations

from datetime import UTC, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from rules.engine import State, plan
from rules.model import QuietHours
from rules.quiet import defer
from rules.simulate import simulate
from tests.engine_support import NOW, THREE_STEPS, Case, at, compile_policy, make_intent, person, run_case

CASES = [
    Case(
        "quiet hours across midnight, later waits count from the deferred time",
        'quiet_hours: {start: "21:00", end: "08:00"}\n' + THREE_STEPS,
        [
            "2026-06-01T18:50:00Z send push",  # 20:50 in Berlin
            "2026-06-02T06:00:00Z send sms (quiet_hours)",  # due 21:05 local, sent 08:00 local
            "2026-06-02T07:00:00Z send email",
            "2026-06-02T07:00:00Z complete",
        ],
        recipient=person(tz="Europe/Berlin"),
        start=at("2026-06-01T18:50:00Z"),
    ),
    Case(
        "quiet hours use UTC when the recipient has no timezone",
        'quiet_hours: {start: "21:00", end: "08:00"}\n' + THREE_STEPS,
        [
            "2026-06-01T19:50:00Z send push",
            "2026-06-01T20:05:00Z send sms",
            "2026-06-02T08:00:00Z send email (quiet_hours)",  # due 21:05 UTC
            "2026-06-02T08:00:00Z complete",
        ],
        start=at("2026-06-01T19:50:00Z"),
    ),
    Case(
        "quiet hours not crossing midnight",
        'quiet_hours: {start: "12:00", end: "14:00"}\n' + THREE_STEPS,
        [
            "2026-06-01T11:50:00Z send push",
            "2026-06-01T14:00:00Z send sms (quiet_hours)",
            "2026-06-01T15:00:00Z send email",
            "2026-06-01T15:00:00Z complete",
        ],
        start=at("2026-06-01T11:50:00Z"),
    ),
    Case(
        "a first step inside quiet hours waits too",
        'quiet_hours: {start: "12:00", end: "14:00"}\nsteps:\n  - send: push',
        ["2026-06-01T14:00:00Z send push (quiet_hours)", "2026-06-01T14:00:00Z complete"],
        start=at("2026-06-01T12:00:00Z"),
    ),
    Case(
        "Berlin spring-forward: 08:00 CEST is 06:00Z",
        'quiet_hours: {start: "21:00", end: "08:00"}\nsteps:\n  - send: push\n  - wait: 1h\n  - send: sms',
        [
            "2026-03-28T19:30:00Z send push",  # 20:30 CET
            "2026-03-29T06:00:00Z send sms (quiet_hours)",
            "2026-03-29T06:00:00Z complete",
        ],
        recipient=person(tz="Europe/Berlin"),
        start=at("2026-03-28T19:30:00Z"),
    ),
    Case(
        "Berlin fall-back: 08:00 CET is 07:00Z",
        'quiet_hours: {start: "21:00", end: "08:00"}\nsteps:\n  - send: push\n  - wait: 1h\n  - send: sms',
        [
            "2026-10-24T18:30:00Z send push",  # 20:30 CEST
            "2026-10-25T07:00:00Z send sms (quiet_hours)",
            "2026-10-25T07:00:00Z complete",
        ],
        recipient=person(tz="Europe/Berlin"),
        start=at("2026-10-24T18:30:00Z"),
    ),
    Case(
        "Berlin fall-back: the repeated 02:15 is inside quiet hours until the second 02:30",
        'quiet_hours: {start: "22:00", end: "02:30"}\nsteps:\n  - send: push\n  - wait: 25m\n  - send: sms',
        [
            "2026-10-25T00:50:00Z send push",  # 02:50 CEST: the first 02:30 has passed
            "2026-10-25T01:30:00Z send sms (quiet_hours)",  # due 02:15 CET, sent 02:30 CET
            "2026-10-25T01:30:00Z complete",
        ],
        recipient=person(tz="Europe/Berlin"),
        start=at("2026-10-25T00:50:00Z"),
    ),
    Case(
        "Berlin spring-forward: an end inside the skipped hour resolves as 03:30 CEST",
        'quiet_hours: {start: "22:00", end: "02:30"}\nsteps:\n  - send: push\n  - wait: 45m\n  - send: sms',
        [
            "2026-03-28T20:30:00Z send push",  # 21:30 CET
            "2026-03-29T01:30:00Z send sms (quiet_hours)",
            "2026-03-29T01:30:00Z complete",
        ],
        recipient=person(tz="Europe/Berlin"),
        start=at("2026-03-28T20:30:00Z"),
    ),
    Case(
        "New York spring-forward: 08:00 EDT is 12:00Z",
        'quiet_hours: {start: "21:00", end: "08:00"}\nsteps:\n  - send: push\n  - wait: 1h\n  - send: sms',
        [
            "2026-03-08T01:30:00Z send push",  # 20:30 EST on the 7th
            "2026-03-08T12:00:00Z send sms (quiet_hours)",
            "2026-03-08T12:00:00Z complete",
        ],
        recipient=person(tz="America/New_York"),
        start=at("2026-03-08T01:30:00Z"),
    ),
    Case(
        "New York fall-back: 08:00 EST is 13:00Z",
        'quiet_hours: {start: "21:00", end: "08:00"}\nsteps:\n  - send: push\n  - wait: 1h\n  - send: sms',
        [
            "2026-11-01T00:30:00Z send push",  # 20:30 EDT on Oct 31
            "2026-11-01T13:00:00Z send sms (quiet_hours)",
            "2026-11-01T13:00:00Z complete",
        ],
        recipient=person(tz="America/New_York"),
        start=at("2026-11-01T00:30:00Z"),
    ),
    Case(
        "urgent steps are not deferred",
        """
        quiet_hours: {start: "21:00", end: "08:00"}
        steps:
          - send: push
            urgent: true
          - wait: 10m
          - send: sms
            urgent: true
          - wait: 10m
          - send: email
        """,
        [
            "2026-06-01T22:00:00Z send push",
            "2026-06-01T22:10:00Z send sms",
            "2026-06-02T08:00:00Z send email (quiet_hours)",
            "2026-06-02T08:00:00Z complete",
        ],
        start=at("2026-06-01T22:00:00Z"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_timeline(case: Case) -> None:
    assert run_case(case) == case.expected


def test_deferred_entry_says_where_it_was_due() -> None:
    policy = compile_policy('quiet_hours: {start: "12:00", end: "14:00"}\n' + THREE_STEPS)
    timeline = simulate(policy, make_intent(person()), at("2026-06-01T11:50:00Z"))
    assert timeline[1]["deferred_from"] == "2026-06-01T12:05:00Z"
    assert timeline[1]["at"] == "2026-06-01T14:00:00Z"


@pytest.mark.parametrize(
    ("start", "end", "due", "expected"),
    [
        ("12:00", "14:00", "2026-06-01T11:59:59Z", "2026-06-01T11:59:59Z"),
        ("12:00", "14:00", "2026-06-01T12:00:00Z", "2026-06-01T14:00:00Z"),  # start is inside
        ("12:00", "14:00", "2026-06-01T13:59:59Z", "2026-06-01T14:00:00Z"),
        ("12:00", "14:00", "2026-06-01T14:00:00Z", "2026-06-01T14:00:00Z"),  # end is outside
        ("21:00", "08:00", "2026-06-01T20:59:00Z", "2026-06-01T20:59:00Z"),
        ("21:00", "08:00", "2026-06-01T21:00:00Z", "2026-06-02T08:00:00Z"),
        ("21:00", "08:00", "2026-06-02T00:00:00Z", "2026-06-02T08:00:00Z"),  # after midnight: same morning
        ("21:00", "08:00", "2026-06-02T07:59:00Z", "2026-06-02T08:00:00Z"),
        ("21:00", "08:00", "2026-06-02T08:00:00Z", "2026-06-02T08:00:00Z"),
    ],
)
def test_defer_boundaries(start: str, end: str, due: str, expected: str) -> None:
    quiet = QuietHours(start=time.fromisoformat(start), end=time.fromisoformat(end))
    assert defer(quiet, ZoneInfo("UTC"), at(due)) == at(expected)


def test_an_open_window_the_clocks_skip_waits_for_the_next_one() -> None:
    # Only 02:00-02:15 is open, and on 2026-03-29 Berlin jumps from 02:00 to 03:00.
    quiet = QuietHours(start=time(2, 15), end=time(2, 0))
    berlin = ZoneInfo("Europe/Berlin")
    due = at("2026-03-28T23:00:00Z")  # 00:00 CET, inside quiet hours
    # The night after, 02:00 CEST, not 03:00 CEST (= the skipped 02:00), which is quiet.
    assert defer(quiet, berlin, due) == at("2026-03-30T00:00:00Z")


def test_times_are_utc() -> None:
    policy = compile_policy('quiet_hours: {start: "21:00", end: "08:00"}\nsteps:\n  - send: push')
    result = plan(policy, make_intent(person(tz="Europe/Berlin")), State(started_at=NOW), NOW)
    assert result.actions[0].due.tzinfo is UTC
    later = plan(
        policy,
        make_intent(person(tz="Europe/Berlin")),
        State(started_at=at("2026-06-01T20:00:00Z")),
        at("2026-06-01T20:00:00Z"),
    )
    assert later.wake_at == at("2026-06-02T06:00:00Z")
    assert later.wake_at is not None and later.wake_at.utcoffset() == timedelta(0)
