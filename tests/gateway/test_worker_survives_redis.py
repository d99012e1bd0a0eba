"""Issue 17: a worker rides out Redis restarts (SIGTERM with AOF, and SIGKILL) and carries on with the
escalations, instead of exiting while the API keeps accepting work. Real Redis, real worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from gateway.config import load_settings
from gateway.embedded import EmbeddedRedis
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state import keys
from gateway.state.connection import sync_client
from gateway.state.store import Store
from tests.fixtures import KEYS, intent, write_config

AUTH = {"Authorization": f"Bearer {KEYS['acme']}"}
BURST = 60  # notifications of the `quick` policy: two sends each at once, two more within 2 s


def _accepted(api: TestClient, within_s: float = 10.0) -> str:
    deadline = time.monotonic() + within_s
    while True:
        response = api.post("/v1/notifications", json=intent(event="quick.ping"), headers=AUTH)
        if response.status_code == 202 or time.monotonic() > deadline:
            assert response.status_code == 202, response.text
            return str(response.json()["id"])
        time.sleep(0.1)  # 503 store_unavailable right after a restart


def _finished(api: TestClient, nid: str, within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        response = api.get(f"/v1/notifications/{nid}", headers=AUTH)
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        if body.get("status") == "completed" or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _unfinished(url: str, ids: list[str], within_s: float) -> list[str]:
    client = sync_client(url)  # a plain or a Sentinel URL
    deadline = time.monotonic() + within_s
    try:
        while True:
            left = [n for n in ids if client.hget(keys.notification(n), "status") != b"completed"]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)
    finally:
        client.close()


def _while_sending(url: str, burst: int) -> None:
    """Wait until the worker is in the middle of the burst: the outbox grew, but not by all of it."""
    client = redis.Redis.from_url(url)
    try:
        start = client.llen(keys.outbox("acme", 0))
        deadline = time.monotonic() + 15
        while client.llen(keys.outbox("acme", 0)) < start + 2 and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        client.close()


def _restart(server: EmbeddedRedis, how: signal.Signals) -> EmbeddedRedis:
    assert server.process is not None
    server.process.send_signal(how)
    server.process.wait(timeout=10)
    time.sleep(0.5)
    return EmbeddedRedis(server.data_dir, port=server.port, persist=True).start()


@dataclass
class Stack:
    api: TestClient
    server: EmbeddedRedis  # replaced by each restart
    worker: subprocess.Popen[bytes]
    log: Path

    def restart_redis(self, how: signal.Signals) -> None:
        self.server = _restart(self.server, how)


@contextmanager
def _running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lease: str = "2s") -> Iterator[Stack]:
    """A real Redis (AOF), a `parley worker` process and the API, stopped at the end whatever happens."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True).start()
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("worker: {lease: 2s}", f"worker: {{lease: {lease}}}"))
    settings = load_settings(config)
    holder = RulesHolder(settings)
    assert not holder.reload()
    env = {**os.environ, "REDIS_URL": server.url}
    args = [sys.executable, "-m", "gateway.cli", "worker", "--config", str(settings.path)]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the worker
        worker = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=out)
        stack = None
        try:
            with TestClient(create_app(settings, Store.connect(server.url, settings.retention), holder)) as api:
                stack = Stack(api, server, worker, log)
                assert _finished(api, _accepted(api), 30).get("status") == "completed"  # the worker is up
                yield stack
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
            (stack.server if stack else server).stop()


def test_a_worker_survives_redis_restarts_and_finishes_the_escalations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _running(tmp_path, monkeypatch) as stack:
        accepted: list[str] = []
        for how in (signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
            accepted += [_accepted(stack.api) for _ in range(BURST)]
            _while_sending(stack.server.url, BURST)  # RQ is preparing, running or finishing a job now
            stack.restart_redis(how)
            time.sleep(1.0)  # the worker meets the outage: its next dequeue and bookkeeping fail
            assert stack.worker.poll() is None, "the worker exited when Redis restarted"
        accepted += [_accepted(stack.api) for _ in range(BURST)]
        assert _unfinished(stack.server.url, accepted, within_s=90) == []  # every one, before and after
        assert stack.worker.poll() is None
    err = stack.log.read_bytes()
    # The restarts did hit the worker: RQ quit and was started again, or a batch was run again.
    assert b"the worker waits for it and carries on" in err or b"Redis unavailable" in err, err.decode()[-3000:]


def test_a_batch_hit_by_a_redis_restart_finishes_within_seconds_not_after_its_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a one-minute lease, steps a Redis restart interrupted are run again within the job (after
    a short pause), not a minute later when the lease runs out."""
    with _running(tmp_path, monkeypatch, lease="60s") as stack:
        accepted = [_accepted(stack.api) for _ in range(BURST)]
        _while_sending(stack.server.url, BURST)
        stack.restart_redis(signal.SIGTERM)
        started = time.monotonic()
        assert _unfinished(stack.server.url, accepted, within_s=25) == []  # the lease would be 60 s
        assert time.monotonic() - started < 25
    assert b"Redis unavailable" in stack.log.read_bytes()  # the restart did hit the batch
