"""A worker killed with SIGKILL mid-step, then restarted: every escalation finishes, nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import redis

from gateway.config import Settings
from gateway.state import keys
from tests.fixtures import KEYS, Harness

EXPECTED = {"0.0.email", "0.0.sms", "2.0.email", "4.0.sms"}  # the `quick` policy's four sends
COUNT = 200  # four sends each: the outbox keeps the newest 1000


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **{f"{n.upper()}_KEY": k for n, k in KEYS.items()}, "REDIS_URL": str(settings.redis_url)}
    args = [sys.executable, "-m", "gateway.cli", "worker", "--config", str(settings.path)]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cut_short(client: redis.Redis, ids: list[str]) -> int:
    """Notifications a kill left mid-step: an attempt claimed but never recorded, or the first
    step (email and sms) with only one of its channels done."""
    count = 0
    for nid in ids:
        attempts = {k: v for k, v in client.hgetall(keys.notification(nid)).items() if k.startswith(b"a:")}
        pending = any(b'"status":"pending"' in v for v in attempts.values())
        count += pending or len({b"a:0.0.email", b"a:0.0.sms"} & attempts.keys()) == 1
    return count


def _kill_while_sending(worker: subprocess.Popen[bytes], client: redis.Redis, seen: int) -> None:
    """SIGKILL the worker the moment the outbox grows: it is in the middle of a batch then."""
    deadline = time.monotonic() + 15
    while client.llen(keys.outbox("acme", 0)) <= seen and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.send_signal(signal.SIGKILL)
    worker.wait()


def _outbox(harness: Harness) -> list[dict[str, str]]:
    return list(harness.call("GET", "/v1/outbox", params={"limit": 1000}).json()["messages"])


def test_sigkill_mid_step_loses_nothing_and_sends_nothing_twice(harness: Harness) -> None:
    harness.clock.now = datetime.now(UTC)  # a real worker process runs on the real clock
    ids = [harness.notify(event="quick.ping") for _ in range(COUNT)]
    harness.clock.now = datetime.now(UTC)
    interrupted = 0
    for _ in range(6):
        _kill_while_sending(_start_worker(harness.settings), harness.redis, harness.redis.llen(keys.outbox("acme", 0)))
        interrupted += _cut_short(harness.redis, ids) > 0
    worker = _start_worker(harness.settings)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = {harness.redis.hget(keys.notification(n), "status") for n in ids}
            if statuses == {b"completed"}:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    assert statuses == {b"completed"}
    sent = Counter((m["notification_id"], m["attempt"]) for m in _outbox(harness) if m["notification_id"] in ids)
    assert max(sent.values()) == 1, "a message was sent twice"
    for nid in ids:
        assert {attempt for (n, attempt) in sent if n == nid} == EXPECTED, nid
    print("kills that landed mid-step:", interrupted)
    assert interrupted >= 1, "no kill landed mid-step; the test did not exercise a crash"
