"""Shared builders for engine tests: policies from YAML, intents, compact timelines."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rules.catalog import Catalog, TemplateInfo
from rules.intent import Intent
from rules.model import Channel, Policy, StopEvent
from rules.simulate import simulate
from rules.validate import compile_rules

CATALOG = Catalog(Path("t"), {"t": TemplateInfo("t", "en", frozenset(Channel), frozenset({"en"}))})

ADDRESSES: dict[str, dict[str, Any]] = {
    "email": {"email": "someone@example.com"},
    "sms": {"phone": "+14155550123"},
    "call": {"phone": "+14155550123"},
    "push": {"push_tokens": ["push-token-1"]},
    "slack": {"slack": "U0123456"},
}


def compile_policy(body: str, *, destinations: str = "") -> Policy:
    """One policy named `p` with default template `t`; `body` is the rest of the policy mapping."""
    text = "version: 1\n"
    if destinations:
        text += "destinations:\n" + textwrap.indent(textwrap.dedent(destinations).strip("\n"), "  ") + "\n"
    text += "policies:\n  - name: p\n    template: t\n"
    text += textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    return compile_rules(text, "test.yaml", CATALOG).policies[0]


def person(channels: str = "email sms push slack", tz: str | None = None, pid: str = "r") -> dict[str, Any]:
    """A person with an address for each named channel (space separated)."""
    fields: dict[str, Any] = {"id": pid}
    for name in channels.split():
        fields.update(ADDRESSES[name])
    if tz:
        fields["timezone"] = tz
    return fields


def make_intent(recipient: dict[str, Any], counterpart: dict[str, Any] | None = None) -> Intent:
    body: dict[str, Any] = {"event": "test.event", "recipient": recipient}
    if counterpart is not None:
        body["counterpart"] = counterpart
    return Intent.model_validate(body)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def brief(timeline: list[dict[str, Any]]) -> list[str]:
    """`<at> <action> [<channel>] [<to>] [(reason)] [FAILED] [instead of x]`, one string per entry."""
    lines = []
    for e in timeline:
        parts = [e["at"], e["action"]]
        if e["channel"]:
            parts.append(e["channel"])
        if e["to"] and e["to"] != "recipient":
            parts.append(f"to {e['to']}")
        if e["reason"]:
            parts.append(f"({e['reason']})")
        if e.get("outcome") == "failed":
            parts.append("FAILED")
        if e.get("instead_of"):
            parts.append(f"instead of {e['instead_of']}")
        lines.append(" ".join(parts))
    return lines


NOW = at("2026-06-01T12:00:00Z")
MS = timedelta(milliseconds=1)

THREE_STEPS = """
steps:
  - send: push
  - wait: 15m
  - send: sms
  - wait: 1h
  - send: email
"""


@dataclass
class Case:
    id: str
    policy: str
    expected: list[str]
    recipient: dict[str, Any] = field(default_factory=person)
    counterpart: dict[str, Any] | None = None
    start: datetime = NOW
    respond_at: datetime | None = None
    respond_with: StopEvent = StopEvent.RESPONDED
    fail: tuple[str, ...] = ()
    destinations: str = ""


def run_case(case: Case) -> list[str]:
    policy = compile_policy(case.policy, destinations=case.destinations)
    intent = make_intent(case.recipient, case.counterpart)
    timeline = simulate(
        policy,
        intent,
        case.start,
        respond_at=case.respond_at,
        respond_with=case.respond_with,
        fail=[Channel(c) for c in case.fail],
    )
    return brief(timeline)
