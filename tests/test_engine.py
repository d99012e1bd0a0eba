"""The escalation engine over simulated time, table-driven: a policy, an intent, the expected timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules.model import StopEvent
from tests.engine_support import MS, NOW, THREE_STEPS, Case, at, person, run_case

CASES = [
    Case(
        "waits count from the previous step",
        THREE_STEPS,
        [
            "2026-06-01T12:00:00Z send push",
            "2026-06-01T12:15:00Z send sms",
            "2026-06-01T13:15:00Z send email",
            "2026-06-01T13:15:00Z complete",
        ],
    ),
    # --- fallbacks -----------------------------------------------------------------------------
    Case(
        "fallback chain push -> sms -> email: no push address, sms fails",
        "fallback: {push: sms, sms: email}\nsteps:\n  - send: push",
        [
            "2026-06-01T12:00:00Z skip push (no_address)",
            "2026-06-01T12:00:00Z send sms (fallback) FAILED instead of push",
            "2026-06-01T12:00:00Z send email (fallback) instead of sms",
            "2026-06-01T12:00:00Z complete",
        ],
        recipient=person("email sms"),
        fail=("sms",),
    ),
    Case(
        "two failing channels falling back to the same channel send it once",
        "fallback: {push: email, sms: email}\nsteps:\n  - send: [push, sms]",
        [
            "2026-06-01T12:00:00Z send push FAILED",
            "2026-06-01T12:00:00Z send sms FAILED",
            "2026-06-01T12:00:00Z send email (fallback) instead of push",
            "2026-06-01T12:00:00Z complete",
        ],
        fail=("push", "sms"),
    ),
    Case(
        "a step whose channels all fail with no fallback does not stop the policy",
        "steps:\n  - send: [push, sms]\n  - wait: 10m\n  - send: email",
        [
            "2026-06-01T12:00:00Z send push FAILED",
            "2026-06-01T12:00:00Z send sms FAILED",
            "2026-06-01T12:10:00Z send email",
            "2026-06-01T12:10:00Z complete",
        ],
        fail=("push", "sms"),
    ),
    Case(
        "a skipped channel beside a sent one: the send is not lost and the notification completes",
        "steps:\n  - send: [push, email]",
        [
            "2026-06-01T12:00:00Z skip push (no_address)",
            "2026-06-01T12:00:00Z send email",
            "2026-06-01T12:00:00Z complete",
        ],
        recipient=person("email"),
    ),
    Case(
        "nothing got through: the notification fails",
        "fallback: {push: sms}\nsteps:\n  - send: push\n  - wait: 5m\n  - send: email",
        [
            "2026-06-01T12:00:00Z send push FAILED",
            "2026-06-01T12:00:00Z skip sms (no_address) instead of push",
            "2026-06-01T12:05:00Z send email FAILED",
            "2026-06-01T12:05:00Z complete (nothing_delivered)",
        ],
        recipient=person("push email"),
        fail=("push", "email"),
    ),
    Case(
        "nobody reachable at all: skips only, then failed",
        "steps:\n  - send: [push, sms]",
        [
            "2026-06-01T12:00:00Z skip push (no_address)",
            "2026-06-01T12:00:00Z skip sms (no_address)",
            "2026-06-01T12:00:00Z complete (nothing_delivered)",
        ],
        recipient=person(""),
    ),
    # --- responses -----------------------------------------------------------------------------
    Case(
        "a response exactly when a step falls due: the step does not happen",
        THREE_STEPS,
        ["2026-06-01T12:00:00Z send push", "2026-06-01T12:15:00Z stop (responded)"],
        respond_at=NOW + timedelta(minutes=15),
    ),
    Case(
        "a response 1 ms before a step falls due: it stops",
        THREE_STEPS,
        ["2026-06-01T12:00:00Z send push", "2026-06-01T12:14:59.999Z stop (responded)"],
        respond_at=NOW + timedelta(minutes=15) - MS,
    ),
    Case(
        "a response 1 ms after a step falls due: the step happened",
        THREE_STEPS,
        [
            "2026-06-01T12:00:00Z send push",
            "2026-06-01T12:15:00Z send sms",
            "2026-06-01T12:15:00.001Z stop (responded)",
        ],
        respond_at=NOW + timedelta(minutes=15) + MS,
    ),
    Case(
        "a response at the start: nothing is sent",
        THREE_STEPS,
        ["2026-06-01T12:00:00Z stop (responded)"],
        respond_at=NOW,
    ),
    Case(
        "a response exactly at a deferred send: it does not happen",
        'quiet_hours: {start: "12:00", end: "14:00"}\n' + THREE_STEPS,
        ["2026-06-01T11:50:00Z send push", "2026-06-01T14:00:00Z stop (responded)"],
        start=at("2026-06-01T11:50:00Z"),
        respond_at=at("2026-06-01T14:00:00Z"),
    ),
    Case(
        "an event the policy does not stop on is ignored",
        "until: [acknowledged]\n" + THREE_STEPS,
        [
            "2026-06-01T12:00:00Z send push",
            "2026-06-01T12:15:00Z send sms",
            "2026-06-01T13:15:00Z send email",
            "2026-06-01T13:15:00Z complete",
        ],
        respond_at=NOW + timedelta(minutes=5),
    ),
    Case(
        "cancelled always stops",
        "until: [acknowledged]\n" + THREE_STEPS,
        ["2026-06-01T12:00:00Z send push", "2026-06-01T12:05:00Z stop (cancelled)"],
        respond_at=NOW + timedelta(minutes=5),
        respond_with=StopEvent.CANCELLED,
    ),
    # --- first_of ------------------------------------------------------------------------------
    Case(
        "first_of: the first channel succeeds",
        "fallback: {push: email}\nsteps:\n  - first_of: [push, sms, email]",
        ["2026-06-01T12:00:00Z send push", "2026-06-01T12:00:00Z complete"],
    ),
    Case(
        "first_of: no address for the first channel",
        "steps:\n  - first_of: [push, sms, email]",
        [
            "2026-06-01T12:00:00Z skip push (no_address)",
            "2026-06-01T12:00:00Z send sms (first_of) instead of push",
            "2026-06-01T12:00:00Z complete",
        ],
        recipient=person("email sms"),
    ),
    Case(
        "first_of: all fail, and the fallback map does not apply inside it",
        "fallback: {push: slack, sms: slack, email: slack}\nsteps:\n  - first_of: [push, sms, email]",
        [
            "2026-06-01T12:00:00Z send push FAILED",
            "2026-06-01T12:00:00Z send sms (first_of) FAILED instead of push",
            "2026-06-01T12:00:00Z send email (first_of) FAILED instead of sms",
            "2026-06-01T12:00:00Z complete (nothing_delivered)",
        ],
        fail=("push", "sms", "email"),
    ),
    # --- repeat --------------------------------------------------------------------------------
    Case(
        "repeat runs a step N times in all, D apart",
        "steps:\n  - send: push\n    repeat: {times: 3, every: 10m}\n  - wait: 5m\n  - send: email",
        [
            "2026-06-01T12:00:00Z send push",
            "2026-06-01T12:10:00Z send push (repeat)",
            "2026-06-01T12:20:00Z send push (repeat)",
            "2026-06-01T12:25:00Z send email",
            "2026-06-01T12:25:00Z complete",
        ],
    ),
    Case(
        "repeat counts from a deferred run",
        'quiet_hours: {start: "12:00", end: "13:00"}\nsteps:\n  - send: push\n    repeat: {times: 3, every: 5m}',
        [
            "2026-06-01T11:50:00Z send push",
            "2026-06-01T11:55:00Z send push (repeat)",
            "2026-06-01T13:00:00Z send push (repeat)",
            "2026-06-01T13:00:00Z complete",
        ],
        start=at("2026-06-01T11:50:00Z"),
    ),
    Case(
        "a response stops a repeat",
        "steps:\n  - send: push\n    repeat: {times: 3, every: 10m}",
        ["2026-06-01T12:00:00Z send push", "2026-06-01T12:10:00Z stop (responded)"],
        respond_at=NOW + timedelta(minutes=10),
    ),
    # --- targets -------------------------------------------------------------------------------
    Case(
        "counterpart target, with the fallback on the counterpart's addresses",
        "fallback: {push: sms}\nsteps:\n  - send: push\n    to: counterpart\n  - call: recipient\n    bridge: counterpart",
        [
            "2026-06-01T12:00:00Z skip push to counterpart (no_address)",
            "2026-06-01T12:00:00Z send sms to counterpart (fallback) instead of push",
            "2026-06-01T12:00:00Z call call",
            "2026-06-01T12:00:00Z complete",
        ],
        recipient=person("sms"),
        counterpart=person("sms", pid="c"),
    ),
    Case(
        "counterpart target without a counterpart is a skip",
        "steps:\n  - send: sms\n    to: counterpart\n  - send: email",
        [
            "2026-06-01T12:00:00Z skip sms to counterpart (no_address)",
            "2026-06-01T12:00:00Z send email",
            "2026-06-01T12:00:00Z complete",
        ],
    ),
    Case(
        "quiet hours of a counterpart step are kept in the counterpart's timezone",
        'quiet_hours: {start: "21:00", end: "08:00"}\nsteps:\n  - send: sms\n    to: counterpart\n  - send: sms',
        [
            "2026-06-01T20:00:00Z send sms to counterpart",  # 16:00 in New York
            "2026-06-02T06:00:00Z send sms (quiet_hours)",  # 22:00 in Berlin
            "2026-06-02T06:00:00Z complete",
        ],
        recipient=person("sms", tz="Europe/Berlin"),
        counterpart=person("sms", tz="America/New_York", pid="c"),
        start=at("2026-06-01T20:00:00Z"),
    ),
    Case(
        "destination target: a failure has no fallback",
        "fallback: {slack: email}\nsteps:\n  - send: slack\n    to: ops",
        ["2026-06-01T12:00:00Z send slack to ops FAILED", "2026-06-01T12:00:00Z complete (nothing_delivered)"],
        fail=("slack",),
        destinations='ops: {channel: slack, address: "#ops"}',
    ),
    Case(
        "destination target succeeds without recipient addresses",
        "steps:\n  - send: slack\n    to: ops",
        ["2026-06-01T12:00:00Z send slack to ops", "2026-06-01T12:00:00Z complete"],
        recipient=person(""),
        destinations='ops: {channel: slack, address: "#ops"}',
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_timeline(case: Case) -> None:
    assert run_case(case) == case.expected
