"""The escalation engine: (policy, intent, state, now) -> what to do now, and when to look again.

Pure: it reads no clock and no store. The state is the record of what already
happened (attempts and their outcomes, stop events); the engine replays the
policy over it, so running it twice on the same state asks for nothing twice,
and a crash between performing an action and recording it is the only window
the caller has to guard (with a fence; see docs/policies.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from rules.intent import Intent, Person
from rules.model import COUNTERPART, RECIPIENT, Action, Channel, Policy, StopEvent, Wait
from rules.quiet import defer
from rules.status import IN_FLIGHT, SUCCEEDED, UNSUCCESSFUL, DeliveryStatus, NotificationStatus


class Kind(StrEnum):
    SEND = "send"
    CALL = "call"
    SKIP = "skip"


class AttemptReason(StrEnum):
    """Why an attempt was made or skipped, as the API shows it (`reason`). Not why a send failed: that
    is the provider's detail and channels.base.Reason."""

    NO_ADDRESS = "no_address"  # skipped: the person has no address for the channel
    FALLBACK = "fallback"  # instead of a channel that failed for good
    FIRST_OF = "first_of"  # the next channel of a first_of step
    REPEAT = "repeat"  # a repeated run of a step
    QUIET_HOURS = "quiet_hours"  # deferred past the recipient's quiet hours
    OPTED_OUT = "opted_out"  # skipped: the number sent STOP (decided by the worker)
    STOPPED = "stopped"  # not handed over: the notification stopped meanwhile (decided by the worker)


class Recorded(Protocol):
    """An attempt as the engine reads it. The state store's record of an attempt
    (gateway/state/records.py `Delivery`, also what the API shows) is passed as it is, so an attempt
    has one shape from the store to the engine to the API; `Attempt` below is the engine's own, for
    the skips it resolves itself, `parley simulate` and tests."""

    @property
    def key(self) -> str: ...
    @property
    def step(self) -> int: ...
    @property
    def run(self) -> int: ...
    @property
    def channel(self) -> Channel: ...
    @property
    def status(self) -> DeliveryStatus: ...
    @property
    def at(self) -> datetime: ...  # when it was performed
    @property
    def updated_at(self) -> datetime: ...  # when the status last changed (a failure is known from then)
    @property
    def primary(self) -> bool: ...  # False for fallbacks and first_of follow-ups


# The engine's values are plain frozen dataclasses, not pydantic models: they are built from data
# already validated (policies, stored attempts) and a worker plans twice per notification, where
# pydantic's construction and copying were a tenth of its CPU (python -m bench, dispatch).
@dataclass(frozen=True, slots=True)
class Attempt:
    """One channel used (or skipped) for one run of one step."""

    step: int
    run: int
    channel: Channel
    status: DeliveryStatus
    at: datetime  # when it was performed
    updated_at: datetime  # when the status last changed (a failure is known from then)
    primary: bool = True  # False for fallbacks and first_of follow-ups
    reason: AttemptReason | None = None

    @property
    def key(self) -> str:
        return attempt_key(self.step, self.run, self.channel)


@dataclass(frozen=True, slots=True)
class Event:
    type: StopEvent
    at: datetime


@dataclass(frozen=True, slots=True)
class State:
    started_at: datetime
    attempts: tuple[Recorded, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class Planned:
    """An action the caller performs now, then records as an Attempt."""

    kind: Kind
    step: int
    run: int
    channel: Channel
    target: str
    template: str
    due: datetime  # when it fell due, after any quiet-hours deferral
    deferred_from: datetime | None = None
    reason: AttemptReason | None = None
    fallback_for: Channel | None = None
    bridge: str | None = None

    @property
    def key(self) -> str:
        return attempt_key(self.step, self.run, self.channel)

    @property
    def why(self) -> AttemptReason | None:
        """The reason shown for it: the engine's reason, else `quiet_hours` when it was deferred."""
        if self.reason is not None:
            return self.reason
        return AttemptReason.QUIET_HOURS if self.deferred_from is not None else None

    @property
    def primary(self) -> bool:
        return self.reason in (None, AttemptReason.REPEAT, AttemptReason.NO_ADDRESS) and self.fallback_for is None


@dataclass(frozen=True, slots=True)
class Final:
    status: NotificationStatus
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Planned, ...] = ()
    wake_at: datetime | None = None  # look again then (nothing to do before)
    final: Final | None = None


def attempt_key(step: int, run: int, channel: Channel) -> str:
    return f"{step}.{run}.{channel}"


def person(intent: Intent, target: str) -> Person | None:
    return intent.recipient if target == RECIPIENT else intent.counterpart if target == COUNTERPART else None


def address_for(policy: Policy, intent: Intent, target: str, channel: Channel) -> str | None:
    """The address a step's target has on a channel, or None."""
    dest = policy.destination(target)
    if dest is not None:
        return dest.address
    who = person(intent, target)
    return who.address(channel) if who is not None else None


def plan(policy: Policy, intent: Intent, state: State, now: datetime) -> Plan:
    """What to do at `now`. Skips are resolved at once, so their fallbacks come in the same plan."""
    actions: list[Planned] = []
    while True:
        step_plan = _plan_once(policy, intent, state, now)
        planned = {b.key for b in actions}
        fresh = [a for a in step_plan.actions if a.key not in planned]
        actions.extend(fresh)
        skips = [a for a in fresh if a.kind is Kind.SKIP]
        if step_plan.final is not None and actions:
            # The replay saw only the skips, not the sends planned beside them: never
            # finish in the same plan. The caller records these; the next plan finishes.
            return Plan(actions=tuple(actions))
        if not skips:  # (a Plan built directly: dataclasses.replace inspects the fields on every call)
            return Plan(tuple(actions), step_plan.wake_at, step_plan.final) if actions else step_plan
        recorded = tuple(_as_attempt(a) for a in skips)
        state = replace(state, attempts=state.attempts + recorded)


def stopping_event(policy: Policy, state: State) -> Event | None:
    ends = [e for e in state.events if policy.stops_on(e.type)]
    return min(ends, key=lambda e: e.at) if ends else None


def _as_attempt(action: Planned) -> Attempt:
    return Attempt(
        step=action.step,
        run=action.run,
        channel=action.channel,
        status=DeliveryStatus.SKIPPED,
        at=action.due,
        updated_at=action.due,
        primary=action.primary,
        reason=action.reason,
    )


def _plan_once(policy: Policy, intent: Intent, state: State, now: datetime) -> Plan:
    stop = stopping_event(policy, state)
    if stop is not None:
        return Plan(final=Final(status=NotificationStatus.STOPPED, at=stop.at, reason=stop.type))
    runs: dict[tuple[int, int], list[Recorded]] = {}
    for attempt in state.attempts:
        runs.setdefault((attempt.step, attempt.run), []).append(attempt)
    cursor, waited = state.started_at, None
    actions: list[Planned] = []
    wakes: list[datetime] = []
    for index, step in enumerate(policy.steps):
        if isinstance(step, Wait):
            waited = step.duration if waited is None else waited + step.duration
            continue
        for run in range(step.runs):
            gap = waited if run == 0 else step.repeat.every if step.repeat else None
            due = cursor + gap if gap is not None else cursor
            waited = None
            recorded = runs.get((index, run))
            if not recorded:
                when = due if step.urgent else _defer(policy, intent, step.target, due)
                if when > now:
                    return Plan(actions=tuple(actions), wake_at=min([when, *wakes]))
                actions.extend(_primary(policy, intent, step, index, run, when, due))
                return Plan(actions=tuple(actions), wake_at=min(wakes) if wakes else None)
            cursor = min((a.at for a in recorded if a.primary), default=recorded[0].at)
            # A run cut short (the caller crashed between channels) still owes its other channels.
            missing = _unstarted(policy, intent, step, index, run, recorded, cursor)
            follow, follow_wakes = _follow_ups(policy, intent, step, index, run, recorded, now)
            actions.extend(missing)
            actions.extend(a for a in follow if a.channel not in {m.channel for m in missing})
            wakes.extend(follow_wakes)
    if actions or wakes or any(a.status in IN_FLIGHT for a in state.attempts):
        return Plan(actions=tuple(actions), wake_at=min(wakes) if wakes else None)
    return Plan(final=_finished(state))


def _finished(state: State) -> Final:
    last = max((max(a.at, a.updated_at) for a in state.attempts), default=state.started_at)
    reached = any(a.status in SUCCEEDED for a in state.attempts)
    status = NotificationStatus.COMPLETED if reached else NotificationStatus.FAILED
    return Final(status=status, at=last, reason=None if reached else "nothing_delivered")


def _defer(policy: Policy, intent: Intent, target: str, due: datetime) -> datetime:
    """Quiet hours are kept in the timezone of the person reached (the recipient's for destinations)."""
    if policy.quiet_hours is None:  # no zone to look up: the due time stands
        return due.astimezone(UTC)
    who = person(intent, target) or intent.recipient
    zone = ZoneInfo(who.timezone or intent.recipient.timezone or "UTC")
    return defer(policy.quiet_hours, zone, due).astimezone(UTC)


def _primary(
    policy: Policy, intent: Intent, step: Action, index: int, run: int, when: datetime, due: datetime
) -> list[Planned]:
    channels = step.channels[:1] if step.kind == "first_of" else step.channels
    reason = AttemptReason.REPEAT if run > 0 else None
    return [_planned(policy, intent, step, index, run, ch, when, due, reason, None) for ch in channels]


def _planned(
    policy: Policy,
    intent: Intent,
    step: Action,
    index: int,
    run: int,
    channel: Channel,
    when: datetime,
    due: datetime,
    reason: AttemptReason | None,
    fallback_for: Channel | None,
) -> Planned:
    reachable = address_for(policy, intent, step.target, channel) is not None
    kind = Kind.CALL if channel is Channel.CALL else Kind.SEND
    return Planned(
        kind=kind if reachable else Kind.SKIP,
        step=index,
        run=run,
        channel=channel,
        target=step.target,
        template=step.template,
        due=when,
        deferred_from=due if when != due else None,
        reason=reason if reachable else AttemptReason.NO_ADDRESS,
        fallback_for=fallback_for,
        bridge=step.bridge if channel is Channel.CALL else None,  # a fallback text bridges nothing
    )


def _unstarted(
    policy: Policy, intent: Intent, step: Action, index: int, run: int, recorded: list[Recorded], ran: datetime
) -> list[Planned]:
    if step.kind == "first_of":
        return []  # its first channel is recorded; the rest are follow-ups
    reason = AttemptReason.REPEAT if run > 0 else None
    done = {a.channel for a in recorded}
    return [
        _planned(policy, intent, step, index, run, ch, ran, ran, reason, None) for ch in step.channels if ch not in done
    ]


def _follow_ups(
    policy: Policy, intent: Intent, step: Action, index: int, run: int, recorded: list[Recorded], now: datetime
) -> tuple[list[Planned], list[datetime]]:
    """Fallbacks (send/call) or the next channel (first_of) for attempts that did not get through."""
    used = {a.channel: a for a in recorded}
    primaries = set(step.channels) if step.kind != "first_of" else set()
    wanted: list[tuple[Channel, Recorded, AttemptReason]] = []
    if step.kind == "first_of":
        for current, following in zip(step.channels, step.channels[1:], strict=False):
            attempt = used.get(current)
            if attempt is None or attempt.status not in UNSUCCESSFUL:
                break
            if following not in used:
                wanted.append((following, attempt, AttemptReason.FIRST_OF))
                break
    elif policy.destination(step.target) is None:
        for attempt in recorded:
            nxt = policy.fallback_for(attempt.channel)
            if attempt.status in UNSUCCESSFUL and nxt is not None and nxt not in used and nxt not in primaries:
                wanted.append((nxt, attempt, AttemptReason.FALLBACK))
                used[nxt] = attempt  # two failures falling back to one channel send it once
    actions, wakes = [], []
    for channel, failed, reason in wanted:
        due = failed.updated_at
        when = due if step.urgent else _defer(policy, intent, step.target, due)
        if when > now:
            wakes.append(when)
            continue
        actions.append(_planned(policy, intent, step, index, run, channel, when, due, reason, failed.channel))
    return actions, wakes
