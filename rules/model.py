"""The compiled policy: what the engine runs and what a notification snapshots.

These types are produced only by `rules.validate` from a document that passed
every check, so the engine can trust them (no unknown channel, no cycle, ...).
"""

from __future__ import annotations

from datetime import time, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    SLACK = "slack"
    CALL = "call"
    WHATSAPP = "whatsapp"


class StopEvent(StrEnum):
    """Events a marketplace (or a recipient's reply) can report on a notification."""

    RESPONDED = "responded"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


RECIPIENT = "recipient"
COUNTERPART = "counterpart"
PERSON_TARGETS = (RECIPIENT, COUNTERPART)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuietHours(Frozen):
    start: time
    end: time


class Destination(Frozen):
    name: str
    channel: Channel
    address: str


class Repeat(Frozen):
    times: int  # runs in all, including the first
    every: timedelta


class Wait(Frozen):
    kind: Literal["wait"] = "wait"
    duration: timedelta


class Action(Frozen):
    """A step that reaches someone: `send`, `first_of` or `call`."""

    kind: Literal["send", "first_of", "call"]
    channels: tuple[Channel, ...]
    target: str  # "recipient", "counterpart" or a destination name
    template: str
    urgent: bool = False
    bridge: str | None = None
    repeat: Repeat | None = None

    @property
    def runs(self) -> int:
        return self.repeat.times if self.repeat else 1


Step = Wait | Action


class Match(Frozen):
    event: str = "*"
    where: tuple[tuple[str, Any], ...] = ()

    def matches_where(self, intent_fields: dict[str, Any]) -> bool:
        return all(lookup(intent_fields, path) == value for path, value in self.where)


class Policy(Frozen):
    name: str
    match: Match
    until: tuple[StopEvent, ...]
    quiet_hours: QuietHours | None
    fallback: tuple[tuple[Channel, Channel], ...]
    steps: tuple[Step, ...]
    destinations: tuple[Destination, ...] = ()

    def fallback_for(self, channel: Channel) -> Channel | None:
        return dict(self.fallback).get(channel)

    def destination(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)

    def stops_on(self, event: StopEvent) -> bool:
        return event is StopEvent.CANCELLED or event in self.until


class RuleSet(Frozen):
    version: int
    policies: tuple[Policy, ...]

    def policy(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)

    def select(self, intent: Matchable) -> Policy | None:
        """The intent's named policy, else the first policy whose match fits."""
        if intent.policy:
            return self.policy(intent.policy)
        fields: dict[str, Any] | None = None  # dumped only for a `where` (most policies match the event only)
        for policy in self.policies:
            if not fnmatchcase(intent.event, policy.match.event):
                continue
            if policy.match.where:
                fields = intent.match_fields() if fields is None else fields
                if not policy.match.matches_where(fields):
                    continue
            return policy
        return None


class Matchable(Protocol):
    """What policy selection reads of an intent (rules.intent.Intent)."""

    @property
    def event(self) -> str: ...
    @property
    def policy(self) -> str | None: ...
    def match_fields(self) -> dict[str, Any]: ...


_MISSING = object()


def lookup(fields: dict[str, Any], dotted: str) -> Any:
    """`data.priority` -> fields["data"]["priority"]; a missing key is never equal to anything."""
    node: Any = fields
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node
