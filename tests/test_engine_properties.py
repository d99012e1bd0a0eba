"""Property tests: the simulator over generated policies, intents, failures and responses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.intent import Intent
from rules.model import Action, Channel, Policy, StopEvent
from rules.simulate import simulate
from rules.validate import compile_rules
from tests.engine_support import CATALOG, at, make_intent, person

SETTINGS = settings(max_examples=200, deadline=None)

PERSON_CHANNELS = ("email", "sms", "push", "slack")
ZONES = (None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
DST_DAYS = (
    "2026-03-08T00:00:00Z",  # New York spring-forward
    "2026-03-29T00:00:00Z",  # Berlin spring-forward
    "2026-04-05T00:00:00Z",  # Lord Howe fall-back (half an hour)
    "2026-10-04T00:00:00Z",  # Lord Howe spring-forward
    "2026-10-25T00:00:00Z",  # Berlin fall-back
    "2026-11-01T00:00:00Z",  # New York fall-back
)
WAITS = ("30s", "5m", "15m", "45m", "1h", "2h30m", "7h", "1d")


@dataclass
class Scenario:
    policy: Policy
    intent: Intent
    start: datetime
    fail: frozenset[Channel]


channel_lists = st.lists(st.sampled_from(PERSON_CHANNELS), min_size=1, max_size=3, unique=True)


@st.composite
def action_steps(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(("send", "send", "first_of", "call", "ops")))
    step: dict[str, Any]
    if kind == "send":
        channels = draw(channel_lists)
        step = {"send": channels if len(channels) > 1 else channels[0]}
        if draw(st.booleans()):
            step["to"] = "counterpart"
    elif kind == "first_of":
        step = {"first_of": draw(st.lists(st.sampled_from(PERSON_CHANNELS), min_size=2, max_size=4, unique=True))}
    elif kind == "call":
        step = {"call": "recipient"}
    else:
        step = {"send": "slack", "to": "ops"}
    if draw(st.integers(0, 4)) == 0:
        step["urgent"] = True
    if draw(st.integers(0, 3)) == 0:
        step["repeat"] = {"times": draw(st.integers(2, 3)), "every": draw(st.sampled_from(WAITS))}
    return step


@st.composite
def step_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        wait_first: bool = draw(st.booleans())
        if steps and wait_first:
            steps.append({"wait": draw(st.sampled_from(WAITS))})
        steps.append(draw(action_steps()))
    return steps


@st.composite
def fallback_maps(draw: st.DrawFn) -> dict[str, str]:
    """Acyclic: each channel may fall back only to a channel later in a random order."""
    order = draw(st.permutations(("email", "sms", "push", "slack", "call")))
    result = {}
    for i, source in enumerate(order[:-1]):
        if draw(st.booleans()):
            result[source] = draw(st.sampled_from(order[i + 1 :]))
    return result


clock_times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from((0, 15, 30, 45)))
quiet_hours = st.one_of(
    st.none(),
    st.tuples(clock_times, clock_times).filter(lambda t: t[0] != t[1]).map(lambda t: {"start": t[0], "end": t[1]}),
)
starts = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)).map(
        lambda d: at(d.replace(microsecond=0).isoformat() + "Z")
    ),
    st.builds(
        lambda day, minutes: at(day) + timedelta(minutes=minutes),
        st.sampled_from(DST_DAYS),
        st.integers(-12 * 60, 36 * 60),
    ),
)
people = st.builds(
    lambda chans, tz: person(" ".join(chans), tz=tz),
    st.lists(st.sampled_from(PERSON_CHANNELS), unique=True),
    st.sampled_from(ZONES),
)


def build_policy(
    steps: list[dict[str, Any]], quiet: dict[str, str] | None, fallback: dict[str, str], until: list[str]
) -> Policy:
    body: dict[str, Any] = {"name": "p", "template": "t", "until": until, "fallback": fallback, "steps": steps}
    if quiet is not None:
        body["quiet_hours"] = quiet
    doc = {"version": 1, "destinations": {"ops": {"channel": "slack", "address": "#ops"}}, "policies": [body]}
    return compile_rules(yaml.safe_dump(doc, sort_keys=False), "generated.yaml", CATALOG).policies[0]


@st.composite
def scenarios(draw: st.DrawFn, *, quiet: bool = True) -> Scenario:
    until = draw(st.lists(st.sampled_from([e.value for e in StopEvent]), min_size=1, unique=True))
    policy = build_policy(draw(step_lists()), draw(quiet_hours) if quiet else None, draw(fallback_maps()), until)
    counterpart = draw(st.one_of(st.none(), people))
    intent = make_intent(draw(people), None if counterpart is None else {**counterpart, "id": "c"})
    fail = frozenset(draw(st.lists(st.sampled_from(list(Channel)), unique=True)))
    return Scenario(policy, intent, draw(starts), fail)


def run(
    s: Scenario, respond_at: datetime | None = None, event: StopEvent = StopEvent.RESPONDED
) -> list[dict[str, Any]]:
    return simulate(s.policy, s.intent, s.start, respond_at=respond_at, respond_with=event, fail=s.fail)


def actions(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in timeline if e["action"] not in ("stop", "complete")]


def check_shape(timeline: list[dict[str, Any]], start: datetime) -> None:
    times = [at(e["at"]) for e in timeline]
    assert times == sorted(times), "timeline times go backwards"
    assert timeline, "empty timeline"
    assert timeline[-1]["action"] in ("stop", "complete"), "the timeline has no end"
    assert all(e["action"] not in ("stop", "complete") for e in timeline[:-1])
    keys = [(e["step"], e["run"], e["channel"]) for e in actions(timeline)]
    assert len(keys) == len(set(keys)), "a channel was used twice for one run of one step"
    assert all(t >= start for t in times[:-1])


@SETTINGS
@given(scenarios(), st.data())
def test_responses_stop_everything_due_at_or_after_them(s: Scenario, data: st.DataObject) -> None:
    baseline = run(s)
    check_shape(baseline, s.start)
    # Respond at, just before or just after a moment something happens, or anywhere.
    moments = sorted({at(e["at"]) for e in baseline})
    near = st.builds(lambda t, d: t + timedelta(milliseconds=d), st.sampled_from(moments), st.sampled_from((-1, 0, 1)))
    anywhere = st.builds(lambda ms: s.start + timedelta(milliseconds=ms), st.integers(0, 4 * 86_400_000))
    respond_at = data.draw(st.one_of(near, anywhere).filter(lambda t: t >= s.start), label="respond_at")
    event = data.draw(st.sampled_from(list(StopEvent)), label="event")
    timeline = run(s, respond_at, event)
    check_shape(timeline, s.start)
    last = timeline[-1]
    if s.policy.stops_on(event):
        assert all(at(e["at"]) < respond_at for e in actions(timeline))
        if last["action"] == "stop":
            assert (at(last["at"]), last["reason"]) == (respond_at, event.value)
        else:  # every step had run before the response
            assert at(last["at"]) < respond_at
        # What happened before the response is what would have happened anyway.
        assert actions(timeline) == [e for e in actions(baseline) if at(e["at"]) < respond_at]
    else:
        assert last["action"] == "complete"
        assert timeline == baseline


@SETTINGS
@given(scenarios(quiet=False))
def test_without_response_or_quiet_hours_every_step_runs(s: Scenario) -> None:
    timeline = run(s)
    check_shape(timeline, s.start)
    assert timeline[-1]["action"] == "complete"
    primary = [e for e in actions(timeline) if "instead_of" not in e]
    assert {(e["step"], e["run"]) for e in primary} == {
        (i, r) for i, step in enumerate(s.policy.steps) if isinstance(step, Action) for r in range(step.runs)
    }
    expected = sum(
        step.runs * (1 if step.kind == "first_of" else len(step.channels))
        for step in s.policy.steps
        if isinstance(step, Action)
    )
    assert len(primary) == expected
    reached = any(e["outcome"] == "sent" for e in actions(timeline))
    assert timeline[-1]["reason"] == (None if reached else "nothing_delivered")


@SETTINGS
@given(scenarios())
def test_non_urgent_sends_never_happen_inside_quiet_hours(s: Scenario) -> None:
    timeline = run(s)
    check_shape(timeline, s.start)
    quiet = s.policy.quiet_hours
    for entry in actions(timeline):
        step = s.policy.steps[entry["step"]]
        assert isinstance(step, Action)
        if "deferred_from" in entry:
            assert at(entry["deferred_from"]) < at(entry["at"])
        if quiet is None or step.urgent:
            continue
        who = s.intent.counterpart if step.target == "counterpart" else None
        zone = ZoneInfo((who and who.timezone) or s.intent.recipient.timezone or "UTC")
        local = at(entry["at"]).astimezone(zone).time()
        if quiet.start < quiet.end:
            inside = quiet.start <= local < quiet.end
        else:
            inside = local >= quiet.start or local < quiet.end
        assert not inside, f"{entry} is inside quiet hours {quiet.start}-{quiet.end} in {zone}"
