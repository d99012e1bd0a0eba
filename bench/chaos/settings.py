"""What the chaos run does: its sizes and faults, Parley's config and rules, and the intents it posts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenario import REPO

TENANT = "chaos"
KEY_ENV = "PARLEY_CHAOS_KEY"
KEY = "chaos-secret-key"
EVENT = "chaos.alert"
SENDER = "Parley chaos <noreply@chaos.example>"
SMTP_TIMEOUT_S = 5  # per SMTP command; the sink answers in SMTP_DELAY_S (a lease must be at least twice this)
STEP_WAIT_S = 3  # the policy's two waits
EMAIL_ATTEMPT = "0.0.email"
ATTEMPTS = (EMAIL_ATTEMPT, "2.0.sms", "4.0.slack")  # the policy's three sends, by attempt key

WORKER_KILL = "worker_kill"
API_KILL = "api_kill"
REDIS_SIGTERM = "redis_sigterm"
REDIS_SIGKILL = "redis_sigkill"
FAULT_KINDS = (WORKER_KILL, API_KILL, REDIS_SIGTERM, REDIS_SIGKILL)

# Email through SMTP to the sink at once, then sms and slack (the outbox) 3 s apart, ended by a response.
RULES = f"""
version: 1
destinations:
  ops: {{channel: slack, address: "#chaos-ops"}}
policies:
  - name: chaos
    match: {{event: "{EVENT}"}}
    until: [responded]
    steps:
      - send: email
        template: inquiry-new
      - wait: {STEP_WAIT_S}s
      - send: sms
        template: inquiry-reminder
      - wait: {STEP_WAIT_S}s
      - send: slack
        to: ops
        template: inquiry-unanswered-ops
"""


@dataclass(frozen=True)
class Options:
    count: int = 3000  # notifications posted
    rate: float = 20.0  # per second
    seed: int = 1
    faults: tuple[str, ...] = (WORKER_KILL,) * 3 + (API_KILL,) * 2 + (REDIS_SIGTERM,) * 2 + (REDIS_SIGKILL,) * 2
    stop_fraction: float = 1 / 3  # of the notifications get a response ...
    stop_window_s: float = 8.0  # ... at a random moment this long after acceptance at most
    lease_s: int = 60  # worker.lease, Parley's default
    smtp_delay_s: float = 0.2  # the sink's answer to each message
    restart_after_s: float = 1.0  # a killed process is started again this long after (systemd's RestartSec=1)
    settle_s: float = 600.0  # after the load, how long at most to wait for every notification to end
    keep: bool = False  # keep the run's folder (config, process logs, raw records)
    root: Path | None = None  # the run's folder (default: a new temporary one)

    @property
    def load_s(self) -> float:
        return self.count / self.rate


QUICK = Options(count=300, faults=(WORKER_KILL, API_KILL, REDIS_SIGTERM, REDIS_SIGKILL), settle_s=300.0)


def config_text(redis_url: str, smtp_port: int, lease_s: int) -> str:
    rules = "\n".join("  " + line for line in RULES.strip().splitlines())
    return (
        f"templates: {REPO / 'templates'}\n"
        f"redis: {{url: '{redis_url}'}}\n"
        f"worker: {{lease: {lease_s}s}}\n"
        "providers:\n"
        "  email:\n"
        f"    host: 127.0.0.1\n    port: {smtp_port}\n    security: none\n    timeout: {SMTP_TIMEOUT_S}\n"
        f'    default: {{from: "{SENDER}"}}\n'
        # Limits far above the load (the final read of every notification included).
        f"tenants:\n  {TENANT}:\n    keys: [{{env: {KEY_ENV}}}]\n"
        "    rate_limits: {ingest: 1000000/second, events: 1000000/second, read: 1000000/second}\n"
        f"rules:\n{rules}\n"
    )


def intent(i: int) -> dict[str, Any]:
    return {
        "event": EVENT,
        "recipient": {"id": f"person-{i}", "email": f"person{i}@chaos.example", "phone": f"+1415{2_000_000 + i:07d}",
                      "timezone": "UTC"},
        "counterpart": {"id": f"asker-{i}"},
        "correlation_key": correlation_key(i),
        "data": {"listing": "Red bike", "message": "Is it still available?"},
    }  # fmt: skip


def correlation_key(i: int) -> str:
    return f"chaos-{i}"


def idempotency_key(i: int) -> str:
    return f"chaos-intent-{i}"


def message_id_local(nid: str, attempt: str) -> str:
    """The local part of the Message-ID Parley gives an email (channels/email/channel.py, message_id)."""
    return re.sub(r"[^A-Za-z0-9.\-]", "-", f"parley.{nid}.{attempt}")
