"""`plan()` called directly, as the worker does: recorded state in, actions out."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from rules.engine import Attempt, AttemptReason, Event, Kind, Plan, State, plan
from rules.model import Channel, StopEvent
from rules.status import DeliveryStatus, NotificationStatus
from tests.engine_support import NOW, THREE_STEPS, compile_policy, make_intent, person


def _attempt(step: int, channel: Channel, status: DeliveryStatus, when: datetime, **kw: Any) -> Attempt:
    return Attempt(step=step, run=0, channel=channel, status=status, at=when, updated_at=kw.pop("updated", when), **kw)


def _record(state: State, result: Plan, status: DeliveryStatus = DeliveryStatus.SENT) -> State:
    done = tuple(
        Attempt(
            step=a.step,
            run=a.run,
            channel=a.channel,
            status=DeliveryStatus.SKIPPED if a.kind is Kind.SKIP else status,
            at=a.due,
            updated_at=a.due,
            primary=a.primary,
            reason=a.reason,
        )
        for a in result.actions
    )
    return replace(state, attempts=state.attempts + done)


def test_failure_recorded_later_makes_the_fallback_due_at_the_failure_time() -> None:
    policy = compile_policy("fallback: {push: sms}\nsteps:\n  - send: push\n  - wait: 1h\n  - send: email")
    failed_at = NOW + timedelta(minutes=5)
    state = State(
        started_at=NOW,
        attempts=(_attempt(0, Channel.PUSH, DeliveryStatus.FAILED, NOW, updated=failed_at),),
    )
    result = plan(policy, make_intent(person()), state, NOW + timedelta(minutes=7))
    assert [(a.channel, a.due, a.reason, a.fallback_for) for a in result.actions] == [
        (Channel.SMS, failed_at, AttemptReason.FALLBACK, Channel.PUSH)
    ]
    assert result.wake_at == NOW + timedelta(hours=1)  # the next step still counts from when push ran
    assert result.final is None


def test_a_step_that_ran_late_moves_the_next_wait() -> None:
    policy = compile_policy("steps:\n  - send: push\n  - wait: 15m\n  - send: sms")
    ran = NOW + timedelta(minutes=3)
    state = State(started_at=NOW, attempts=(_attempt(0, Channel.PUSH, DeliveryStatus.SENT, ran),))
    result = plan(policy, make_intent(person()), state, NOW + timedelta(minutes=15))
    assert result == Plan(wake_at=ran + timedelta(minutes=15))


def test_replanning_the_same_state_gives_the_same_actions() -> None:
    policy = compile_policy("fallback: {push: sms}\nsteps:\n  - send: [push, email]\n  - wait: 15m\n  - send: sms")
    intent = make_intent(person("email sms"))
    state = State(started_at=NOW)
    first = plan(policy, intent, state, NOW)
    assert first == plan(policy, intent, state, NOW)
    assert [(a.kind, a.channel) for a in first.actions] == [
        (Kind.SKIP, Channel.PUSH),
        (Kind.SEND, Channel.EMAIL),
        (Kind.SEND, Channel.SMS),
    ]
    recorded = _record(state, first)
    again = plan(policy, intent, recorded, NOW)
    assert again.actions == ()
    assert again.wake_at == NOW + timedelta(minutes=15)
    assert again == plan(policy, intent, recorded, NOW)


def test_pending_attempts_are_neither_resent_nor_completed() -> None:
    policy = compile_policy("fallback: {push: sms}\nsteps:\n  - send: push\n  - wait: 10m\n  - send: email")
    intent = make_intent(person())
    state = State(started_at=NOW)
    state = _record(state, plan(policy, intent, state, NOW), DeliveryStatus.PENDING)
    later = NOW + timedelta(minutes=10)
    state = _record(state, plan(policy, intent, state, later), DeliveryStatus.PENDING)
    assert [a.channel for a in state.attempts] == [Channel.PUSH, Channel.EMAIL]
    for now in (later, later + timedelta(days=1)):
        assert plan(policy, intent, state, now) == Plan()
    delivered = replace(state, attempts=tuple(replace(a, status=DeliveryStatus.DELIVERED) for a in state.attempts))
    final = plan(policy, intent, delivered, later).final
    assert final is not None and final.status is NotificationStatus.COMPLETED


def test_a_plan_never_finishes_beside_actions() -> None:
    policy = compile_policy("steps:\n  - send: [push, email]")
    intent = make_intent(person("email"))
    state = State(started_at=NOW)
    result = plan(policy, intent, state, NOW)
    assert result.final is None
    assert [(a.kind, a.channel) for a in result.actions] == [(Kind.SKIP, Channel.PUSH), (Kind.SEND, Channel.EMAIL)]
    final = plan(policy, intent, _record(state, result), NOW).final
    assert final is not None and final.status is NotificationStatus.COMPLETED


@pytest.mark.parametrize(
    ("statuses", "expected", "reason"),
    [
        ((DeliveryStatus.FAILED, DeliveryStatus.SKIPPED), NotificationStatus.FAILED, "nothing_delivered"),
        ((DeliveryStatus.FAILED, DeliveryStatus.SENT), NotificationStatus.COMPLETED, None),
        ((DeliveryStatus.DELIVERED, DeliveryStatus.FAILED), NotificationStatus.COMPLETED, None),
    ],
)
def test_final_status(
    statuses: tuple[DeliveryStatus, DeliveryStatus], expected: NotificationStatus, reason: str | None
) -> None:
    policy = compile_policy("steps:\n  - send: push\n  - send: email")
    attempts = (
        _attempt(0, Channel.PUSH, statuses[0], NOW),
        _attempt(1, Channel.EMAIL, statuses[1], NOW, updated=NOW + timedelta(minutes=2)),
    )
    final = plan(
        policy, make_intent(person()), State(started_at=NOW, attempts=attempts), NOW + timedelta(hours=1)
    ).final
    assert final is not None
    assert (final.status, final.reason, final.at) == (expected, reason, NOW + timedelta(minutes=2))


def test_a_stop_event_ends_the_plan_at_its_time() -> None:
    policy = compile_policy(THREE_STEPS)
    event = Event(type=StopEvent.ACKNOWLEDGED, at=NOW + timedelta(minutes=3))
    state = State(started_at=NOW, events=(event,))
    final = plan(policy, make_intent(person()), state, NOW + timedelta(minutes=20)).final
    assert final is not None
    assert (final.status, final.reason, final.at) == (NotificationStatus.STOPPED, StopEvent.ACKNOWLEDGED, event.at)
