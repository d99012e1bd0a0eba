"""What the benchmark runs: its config and rules, the intents it sends, and the sizes of each measurement."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench"
KEY_ENV = "PARLEY_BENCH_KEY"
KEY = "bench-secret-key"
SLACK_TOKEN_ENV = "PARLEY_BENCH_SLACK_TOKEN"
SLACK_TOKEN = "xoxb-bench"

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
    latency: int  # notifications per sustained-rate run of the latency phase
    latency_window_s: float  # over which its lateness run spreads due times


FULL = Sizes(ingest_s=10, warmup_s=2, dispatch=10_000, timers=100_000, timers_window_s=60.0, footprint=10_000,
             race=10_000, race_window_s=40.0, latency=3_000, latency_window_s=30.0)  # fmt: skip
QUICK = Sizes(ingest_s=3, warmup_s=1, dispatch=2_000, timers=4_000, timers_window_s=6.0, footprint=2_000,
              race=1_000, race_window_s=4.0, latency=400, latency_window_s=5.0)  # fmt: skip


def config_text(redis_url: str) -> str:
    return _config(REPO / "templates", redis_url, RULES, "worker: {lease: 60s}\n")


def _config(templates: Path, redis_url: str, rules: str, worker: str, providers: str = "") -> str:
    indented = "\n".join("  " + line for line in rules.strip().splitlines())
    return (
        f"templates: {templates}\n"
        f"redis: {{url: '{redis_url}'}}\n"
        f"{worker}{providers}"
        # Limits on, as in production (each request pays for its check), but far above what the load reaches.
        f"tenants:\n  {TENANT}:\n    keys: [{{env: {KEY_ENV}}}]\n"
        "    rate_limits: {ingest: 1000000/second, events: 1000000/second, read: 1000000/second}\n"
        f"rules:\n{indented}\n"
    )


# The latency phase (bench/latency.py): a first step on two real providers at once, email over SMTP and
# Slack's Web API, both stood in for on loopback. The Slack message goes to the recipient's own `slack`
# address (see intent()): a step that names a destination may use only that destination's channel.
LATENCY_EVENT = "bench.latency"
LATENCY_TEMPLATE = "bench-latency"
LATENCY_RULES = f"""
version: 1
policies:
  - name: latency
    match: {{event: "{LATENCY_EVENT}"}}
    steps:
      - send: [email, slack]
        template: {LATENCY_TEMPLATE}
      - wait: 1h
      - send: email
        template: {LATENCY_TEMPLATE}
"""
# in_flight: notifications a worker runs at once; max_sessions / max_in_flight: calls per provider per worker.
LATENCY_WORKER = "worker: {lease: 60s, in_flight: 2000}\n"


def latency_config_text(redis_url: str, templates: Path, smtp_port: int, slack_port: int) -> str:
    providers = (
        "providers:\n"
        f"  email: {{host: 127.0.0.1, port: {smtp_port}, security: none, max_sessions: 100,\n"
        '          default: {from: "Bench <bench@example.com>"}}\n'
        f'  slack: {{base_url: "http://127.0.0.1:{slack_port}/api/", token_env: {SLACK_TOKEN_ENV},\n'
        "          max_in_flight: 100}\n"
    )
    return _config(templates, redis_url, LATENCY_RULES, LATENCY_WORKER, providers)


def latency_templates(folder: Path) -> Path:
    """A templates folder holding only `bench-latency`: no shipped template has both an email and a Slack
    part, so it joins the shipped inquiry email (text and HTML, as real mail) and the ops Slack text."""
    target = folder / LATENCY_TEMPLATE / "en"
    target.mkdir(parents=True, exist_ok=True)
    shipped = REPO / "templates"
    for part in ("email.subject.txt", "email.txt", "email.html"):
        shutil.copyfile(shipped / "inquiry-new" / "en" / part, target / part)
    shutil.copyfile(shipped / "inquiry-unanswered-ops" / "en" / "slack.txt", target / "slack.txt")
    shutil.copyfile(shipped / "inquiry-new" / "example.json", target.parent / "example.json")
    return folder


def intent(i: int, event: str = "inquiry.created") -> dict[str, Any]:
    """The README's inquiry, for recipient number `i` (distinct ids, emails and valid phone numbers);
    for the latency phase's event the recipient also has a Slack address (the other phases' intents,
    and so their footprint, stay as they were)."""
    recipient: dict[str, Any] = {
        "id": f"seller-{i}", "email": f"seller{i}@example.com", "phone": f"+1415{2_000_000 + i:07d}",
        "push_tokens": [f"fcm-token-{i:08d}"], "timezone": "America/Los_Angeles",
    }  # fmt: skip
    if event == LATENCY_EVENT:
        recipient["slack"] = "#bench"
    return {
        "event": event,
        "recipient": recipient,
        "counterpart": {"id": f"buyer-{i}"},
        "data": {"listing": "Red bike", "message": "Is it still available?"},
    }


def intent_json(i: int, event: str = "inquiry.created") -> str:
    return json.dumps(intent(i, event), separators=(",", ":"))
