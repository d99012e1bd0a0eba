"""What the benchmark runs: its config and rules, the intents it sends, and the sizes of each measurement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench"
KEY_ENV = "PARLEY_BENCH_KEY"
KEY = "bench-secret-key"

# The shipped inquiry policy without quiet hours (so every run does the same work at any hour),
# a one-channel first step for dispatch, and a policy whose first step waits (timers, stop race).
RULES = """
version: 1
defaults:
  until: [responded, acknowledged]
  fallback: {push: sms, sms: email}
destinations:
  ops-slack: {channel: slack, address: "#marketplace-ops"}
policies:
  - name: inquiry-unanswered
    match: {event: "inquiry.created"}
    steps:
      - send: [push, email]
        template: inquiry-new
      - wait: 15m
      - send: sms
        template: inquiry-reminder
      - wait: 1h
      - send: slack
        to: ops-slack
        template: inquiry-unanswered-ops
        urgent: true
    fallback: {push: sms, sms: email, call: sms}
  - name: dispatch
    match: {event: "bench.dispatch"}
    steps:
      - send: email
        template: inquiry-new
      - wait: 1h
      - send: sms
        template: inquiry-reminder
  - name: due-later
    match: {event: "bench.later"}
    until: [responded]
    steps:
      - wait: 10m
      - send: email
        template: inquiry-reminder
      - wait: 1h
      - send: sms
        template: inquiry-reminder
"""
LATER_WAIT_MS = 10 * 60 * 1000  # the `due-later` policy's first wait
LATER_ATTEMPT = "1.0.email"  # the attempt its first send records


@dataclass(frozen=True)
class Sizes:
    ingest_s: int
    warmup_s: int
    dispatch: int
    timers: int
    timers_window_s: float
    footprint: int
    race: int
    race_window_s: float


FULL = Sizes(ingest_s=10, warmup_s=2, dispatch=10_000, timers=100_000, timers_window_s=60.0, footprint=10_000,
             race=10_000, race_window_s=40.0)  # fmt: skip
QUICK = Sizes(ingest_s=3, warmup_s=1, dispatch=2_000, timers=4_000, timers_window_s=6.0, footprint=2_000,
              race=1_000, race_window_s=4.0)  # fmt: skip


def config_text(redis_url: str) -> str:
    rules = "\n".join("  " + line for line in RULES.strip().splitlines())
    return (
        f"templates: {REPO / 'templates'}\n"
        f"redis: {{url: '{redis_url}'}}\n"
        "worker: {lease: 60s}\n"
        # Limits on, as in production (each request pays for its check), but far above what the load reaches.
        f"tenants:\n  {TENANT}:\n    keys: [{{env: {KEY_ENV}}}]\n"
        "    rate_limits: {ingest: 1000000/second, events: 1000000/second, read: 1000000/second}\n"
        f"rules:\n{rules}\n"
    )


def intent(i: int, event: str = "inquiry.created") -> dict[str, Any]:
    """The README's inquiry, for recipient number `i` (distinct ids, emails and valid phone numbers)."""
    return {
        "event": event,
        "recipient": {"id": f"seller-{i}", "email": f"seller{i}@example.com", "phone": f"+1415{2_000_000 + i:07d}",
                      "push_tokens": [f"fcm-token-{i:08d}"], "timezone": "America/Los_Angeles"},
        "counterpart": {"id": f"buyer-{i}"},
        "data": {"listing": "Red bike", "message": "Is it still available?"},
    }  # fmt: skip


def intent_json(i: int, event: str = "inquiry.created") -> str:
    return json.dumps(intent(i, event), separators=(",", ":"))
