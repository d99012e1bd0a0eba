"""`parley simulate`: run the engine over simulated time and record what it would do."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import Any

from rules.engine import Attempt, Event, Kind, Planned, State, plan
from rules.intent import Intent
from rules.model import Channel, Policy, StopEvent
from rules.status import DeliveryStatus

MAX_ROUNDS = 10_000  # a policy has at most a few hundred actions; this only guards against a bug


def simulate(
    policy: Policy,
    intent: Intent,
    start: datetime,
    *,
    respond_at: datetime | None = None,
    respond_with: StopEvent = StopEvent.RESPONDED,
    fail: Collection[Channel] = (),
) -> list[dict[str, Any]]:
    """The timeline, in order: every action, then `stop` or `complete` (or nothing if it never ends)."""
    state = State(started_at=start)
    now = start
    timeline: list[dict[str, Any]] = []
    pending_response = respond_at
    for _ in range(MAX_ROUNDS):
        result = plan(policy, intent, state, now)
        if result.final is not None:
            timeline.append(
                _entry(
                    result.final.at,
                    None,
                    "stop" if result.final.reason in set(StopEvent) else "complete",
                    reason=result.final.reason,
                )
            )
            return timeline
        next_time = min((a.due for a in result.actions), default=result.wake_at)
        if pending_response is not None and (next_time is None or next_time >= pending_response):
            state = replace(state, events=(*state.events, Event(type=respond_with, at=pending_response)))
            now, pending_response = max(now, pending_response), None
            continue
        if result.actions:
            state = _perform(state, result.actions, fail, timeline)
            continue
        if result.wake_at is None:
            return timeline  # a response event the policy does not stop on, and nothing left to do
        now = result.wake_at
    raise RuntimeError("simulation did not settle; this is a bug in the engine")


def _perform(
    state: State, actions: tuple[Planned, ...], fail: Collection[Channel], timeline: list[dict[str, Any]]
) -> State:
    recorded = []
    for action in sorted(actions, key=lambda a: (a.due, a.step, a.run)):
        if action.kind is Kind.SKIP:
            status = DeliveryStatus.SKIPPED
        elif action.channel in fail:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.SENT
        recorded.append(
            Attempt(
                step=action.step,
                run=action.run,
                channel=action.channel,
                status=status,
                at=action.due,
                updated_at=action.due,
                primary=action.primary,
                reason=action.reason,
            )
        )
        timeline.append(_action_entry(action, status))
    return replace(state, attempts=state.attempts + tuple(recorded))


def _action_entry(action: Planned, status: DeliveryStatus) -> dict[str, Any]:
    entry = _entry(action.due, action.step, action.kind.value, reason=action.why)
    entry.update(channel=action.channel.value, to=action.target, template=action.template, run=action.run)
    entry["outcome"] = status.value
    if action.fallback_for is not None:
        entry["instead_of"] = action.fallback_for.value
    if action.deferred_from is not None:
        entry["deferred_from"] = iso(action.deferred_from)
    if action.bridge is not None:
        entry["bridge"] = action.bridge
    return entry


def _entry(at: datetime, step: int | None, action: str, *, reason: str | None) -> dict[str, Any]:
    return {
        "at": iso(at),
        "step": step,
        "action": action,
        "channel": None,
        "to": None,
        "template": None,
        "reason": reason,
    }


def iso(moment: datetime) -> str:
    text = moment.isoformat(timespec="seconds" if moment.microsecond == 0 else "milliseconds")
    return text.replace("+00:00", "Z")
