"""Issue 17, Redis Sentinel: `redis+sentinel://` URLs checked like every config value, and a real failover
(a master, a replica and three sentinels, the master killed) that the API answers with 503s and then
rides out, a real `parley worker` finishing everything accepted before and after, and a stop
acknowledged with redis.wait_replicas still holding on the new master."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio.sentinel import SentinelManagedConnection

from gateway.config import load_settings
from gateway.delivery.worker import wait_for_redis
from gateway.embedded import EmbeddedRedis
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state import keys
from gateway.state.autopipe import _HiredisPacking
from gateway.state.connection import BlockingSentinelPool, ReplicaWait, SentinelUrl, parse, sync_client
from gateway.state.store import Store
from rules.problems import RulesError
from tests.fixtures import KEYS, intent, write_config
from tests.gateway.test_worker_survives_redis import _accepted, _finished, _unfinished
from tests.sentinel_cluster import SentinelCluster, ask, sentinel_cluster

AUTH = {"Authorization": f"Bearer {KEYS['acme']}"}
BURST = 20  # notifications of the `quick` policy: two sends at once, two more within 2 s
RULES_ONLY = "rules:\n  version: 1\n  policies:\n    - name: p\n      match: {event: e}\n      steps: [{send: email, template: t}]\n"


# -- the URL and the settings, checked up front ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://redis.internal:6379",
            "unknown scheme 'http': use redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://",
        ),
        ("redis.internal:6379", "not a Redis URL"),
        ("redis://redis.internal:99999/0", "Port out of range"),
        ("redis+sentinel://s1:26379,s2:26379", "a Sentinel URL names the service the sentinels monitor"),
        ("redis+sentinel:///parley", "a Sentinel URL names its sentinels"),
        ("redis+sentinel://s1:26379,s2:x/parley", "sentinel 2 (s2): the port must be a number from 1 to 65535"),
        ("redis+sentinel://s1/parley/zero", "at most a database number"),
        ("redis+sentinel://s1/parley?sentinel_pasword=x", "unknown Sentinel URL option 'sentinel_pasword'"),
        ("redis+sentinel://s1/parley?socket_timeout=0", "socket_timeout is a number of seconds above zero"),
    ],
)
def test_a_bad_redis_url_is_a_config_error_at_its_place(tmp_path: Path, url: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"redis:\n  url: {url}\n" + RULES_ONLY)
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={})
    [problem] = caught.value.problems
    assert (problem.line, problem.column, problem.path) == (2, 8, "redis.url")
    assert message in problem.message
    assert str(problem).startswith(f"{path}:2:8: redis.url: ")


def test_a_bad_redis_url_in_the_environment_is_a_config_error_too(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("redis:\n  url: redis://fine:6379/0\n" + RULES_ONLY)
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={"REDIS_URL": "redis+sentinel://s1:26379"})
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (2, "redis.url")
    assert problem.message.startswith("the environment variable REDIS_URL: a Sentinel URL names the service")


@pytest.mark.parametrize(("given", "ms"), [("500ms", 500), ("1s", 1000), ("10s", 10_000)])
def test_wait_timeout_takes_milliseconds_or_a_duration(tmp_path: Path, given: str, ms: int) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"redis:\n  wait_replicas: 1\n  wait_timeout: {given}\n" + RULES_ONLY)
    assert load_settings(path, env={}).redis_wait == ReplicaWait(1, ms)


@pytest.mark.parametrize("given", ["0ms", "11s", "1m", "soon"])
def test_wait_timeout_is_refused_at_its_place_past_ten_seconds_or_at_zero(tmp_path: Path, given: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"redis:\n  wait_replicas: 1\n  wait_timeout: {given}\n" + RULES_ONLY)
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={})
    [problem] = caught.value.problems
    assert (problem.line, problem.column, problem.path) == (3, 17, "redis.wait_timeout")


def test_a_sentinel_url_is_read_whole() -> None:
    url = (
        "redis+sentinel://app:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:5000/parley/2?sentinel_password=x&socket_timeout=3"
    )
    assert parse(url) == SentinelUrl(
        sentinels=(("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 5000)), service="parley", db=2,
        username="app", password="s@cret", sentinel_password="x", socket_timeout=3.0,
    )  # fmt: skip
    assert parse("redis://localhost:6379/0") is None and parse("unix:///run/redis.sock") is None


def test_a_store_on_sentinel_keeps_the_blocking_pool_and_the_hiredis_packing() -> None:
    store = Store.connect("redis+sentinel://127.0.0.1:1/parley", timedelta(days=1))  # nothing connects yet
    try:
        for client, socket_timeout in ((store.r, None), (store._pipe.client, None)):
            pool = client.connection_pool
            assert isinstance(pool, BlockingSentinelPool)
            assert (pool.max_connections, pool.timeout) == (100, 20)
            assert issubclass(pool.connection_class, SentinelManagedConnection)
            assert issubclass(pool.connection_class, _HiredisPacking)
            assert pool.connection_kwargs["socket_timeout"] is socket_timeout
    finally:
        asyncio.run(store.close())


# -- a real failover ------------------------------------------------------------------------------


@dataclass
class Stack:
    api: TestClient
    worker: subprocess.Popen[bytes]
    log: Path


@contextmanager
def _running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[Stack]:
    """A `parley worker` process and the API, both on `url`, with redis.wait_replicas 1."""
    monkeypatch.setenv("REDIS_URL", url)
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    settings = load_settings(write_config(tmp_path, extra="redis: {wait_replicas: 1, wait_timeout: 500ms}"))
    assert settings.redis_url == url and settings.redis_wait == ReplicaWait(1, 500)
    holder = RulesHolder(settings)
    assert not holder.reload()
    log = tmp_path / "worker.log"
    args = [sys.executable, "-m", "gateway.cli", "worker", "--config", str(settings.path)]
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the worker
        worker = subprocess.Popen(args, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=out)
        try:
            store = Store.connect(url, settings.retention, settings.redis_wait)
            with TestClient(create_app(settings, store, holder)) as api:
                assert _finished(api, _accepted(api), 30).get("status") == "completed"  # the worker is up
                yield Stack(api, worker, log)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


def _outbox_of(api: TestClient, nid: str) -> list[dict[str, Any]]:
    messages = api.get("/v1/outbox", params={"limit": keys.OUTBOX_KEEP}, headers=AUTH).json()["messages"]
    return [m for m in messages if m.get("notification_id") == nid]


def _first_step_sent(api: TestClient, nid: str, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while len(_outbox_of(api, nid)) < 2:  # the `quick` policy's first step: an email and an SMS
        assert time.monotonic() < deadline, "the first step was not sent"
        time.sleep(0.02)


def _through_the_failover(api: TestClient, within_s: float = 30.0) -> tuple[str, int]:
    """Post until accepted: every answer before is a 503 store_unavailable. The id and how many 503s."""
    deadline, refused = time.monotonic() + within_s, 0
    while True:
        response = api.post("/v1/notifications", json=intent(event="quick.ping"), headers=AUTH)
        if response.status_code == 202:
            return str(response.json()["id"]), refused
        assert (response.status_code, response.json()["error"]) == (503, "store_unavailable"), response.text
        assert response.headers["retry-after"] == "1"
        assert time.monotonic() < deadline, "no master within 30 s"
        refused += 1
        time.sleep(0.05)


def _stop(api: TestClient, nid: str) -> Any:
    return api.post(f"/v1/notifications/{nid}/events", json={"type": "cancelled"}, headers=AUTH)


def test_through_a_sentinel_failover_the_api_answers_503_then_carries_on_and_loses_nothing_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sentinel_cluster(tmp_path / "cluster") as cluster, _running(tmp_path, monkeypatch, cluster.url) as stack:
        api = stack.api
        _no_master_for_an_unknown_service(cluster)
        _a_read_cut_short_leaves_no_reply_behind(cluster.url)
        accepted = [_accepted(api) for _ in range(BURST)]
        # The last thing before the failover: a stop, acknowledged once the replica had it (WAIT), and with
        # it every write before it, the notifications above included.
        stopped = _accepted(api)
        _first_step_sent(api, stopped)  # its next steps, 1 s and 2 s later, would send again unless stopped
        assert _stop(api, stopped).json()["result"] == "stopped"
        sent_before_the_stop = _outbox_of(api, stopped)

        old_master = cluster.current_master()
        assert old_master == cluster.master_port
        killed_at = time.monotonic()
        cluster.kill(old_master)
        assert api.get("/readyz").status_code == 503  # no master to be ready with
        first_after, refused = _through_the_failover(api)
        print(f"\nfailover: {refused} answers of 503 over {time.monotonic() - killed_at:.2f} s")
        assert refused > 0
        assert cluster.current_master() == cluster.replica_port
        assert api.get("/readyz").status_code == 200
        accepted += [first_after] + [_accepted(api) for _ in range(BURST)]

        assert _unfinished(cluster.url, accepted, within_s=30) == []  # every one, before and after
        after = api.get(f"/v1/notifications/{stopped}", headers=AUTH).json()
        assert after["status"] == "stopped"  # the stop survived the failover ...
        assert _outbox_of(api, stopped) == sent_before_the_stop  # ... and nothing more was sent
        _the_new_master_has_no_replica_to_confirm_a_stop(api)
        assert stack.worker.poll() is None, "the worker exited in the failover"
        stack.worker.terminate()
        assert stack.worker.wait(timeout=10) == 0  # SIGTERM still stops it, promptly
    err = stack.log.read_bytes()
    assert b"the worker waits for it and carries on" in err or b"Redis unavailable" in err, err.decode()[-3000:]


def _the_new_master_has_no_replica_to_confirm_a_stop(api: TestClient) -> None:
    """The old master is gone: a stop is made but cannot be confirmed, a 503 not_replicated, each time."""
    nid = str(api.post("/v1/notifications", json=intent(event="slow.ping"), headers=AUTH).json()["id"])
    for _ in range(2):  # a retry is safe, and waits again
        refused = _stop(api, nid)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "error": "not_replicated",
            "message": "recorded, but fewer Redis replicas than redis.wait_replicas confirmed it in time; retry",
        }
    assert api.get(f"/v1/notifications/{nid}", headers=AUTH).json()["status"] == "stopped"  # on the master


class _Interrupted(Exception):
    pass


def _a_read_cut_short_leaves_no_reply_behind(url: str) -> None:
    """A sync Sentinel connection whose read was interrupted (as RQ's blocking pop is, by its SIGTERM handler
    raising) is closed, not handed to the next command with the late reply still to come (redis-py PR #4292)."""

    def interrupt(*_: Any) -> None:
        raise _Interrupted

    client = sync_client(url)
    before = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(_Interrupted):
            client.blpop(["parley:test:nothing"], timeout=1)
        assert client.echo("mine") == b"mine"  # not the pop's late nil
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
        client.close()


def _no_master_for_an_unknown_service(cluster: SentinelCluster) -> None:
    """While the sentinels name no master (here: for a service they do not monitor), a worker waits and
    the store is not ready (what /readyz reports as "redis")."""
    elsewhere = cluster.url.replace("/parley", "/elsewhere")
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="No master found for 'elsewhere'"):
        wait_for_redis(sync_client(elsewhere), seconds=0.3)
    assert time.monotonic() - started >= 0.3
    wait_for_redis(sync_client(cluster.url), seconds=5)

    async def pings() -> tuple[bool, bool]:
        known, unknown = Store.connect(cluster.url, timedelta(days=1)), Store.connect(elsewhere, timedelta(days=1))
        try:
            return await known.ping(), await unknown.ping()
        finally:
            await known.close()
            await unknown.close()

    assert asyncio.run(pings()) == (True, False)


def test_a_write_answered_readonly_by_a_demoted_master_is_a_connection_error_and_the_next_one_reconnects(
    tmp_path: Path,
) -> None:
    """The auto-pipeline reads replies itself, past redis-py's Sentinel connection, which turns READONLY
    into a connection error: it must do the same, or the API would answer 500 until the socket died."""
    old, new = (
        EmbeddedRedis(tmp_path / "old", persist=False).start(),
        EmbeddedRedis(tmp_path / "new", persist=False).start(),
    )

    async def demoted_and_back() -> tuple[int, int]:
        store = Store.connect(old.url, timedelta(days=1))
        try:
            first = await store._pipe.execute("CLIENT", "ID")
            ask(old.port, "REPLICAOF", "127.0.0.1", str(new.port))  # what a failover does to a master still up
            with pytest.raises(redis.ConnectionError, match="READONLY"):
                await store.count("probe")
            ask(old.port, "REPLICAOF", "NO", "ONE")
            await store.count("probe")
            return int(first), int(await store._pipe.execute("CLIENT", "ID"))
        finally:
            await store.close()

    try:
        first, second = asyncio.run(demoted_and_back())
        assert second != first  # the connection that met READONLY was closed, not reused
    finally:
        old.stop()
        new.stop()
