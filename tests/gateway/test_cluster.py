"""Issue 17: Parley on a real three-master Redis Cluster (Valkey, started by the test), with RQ's queue
on a plain Redis beside it: intents accepted, escalations run by a real `parley worker` process,
Idempotency-Keys, stops by correlation key, the outbox and /metrics, across every master."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis.cluster import ClusterNode, RedisCluster

from gateway.config import Settings, load_settings
from gateway.embedded import EmbeddedRedis
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state import keys
from gateway.wiring import store_for
from tests.fixtures import KEYS, intent, write_config
from tests.redis_cluster import redis_cluster

AUTH = {"Authorization": f"Bearer {KEYS['acme']}"}
OPS = {"Authorization": f"Bearer {KEYS['ops']}"}
SHARDS = 8
COUNT = 48  # a third of them stopped by correlation key right away
QUICK_SENDS = {"0.0.email", "0.0.sms", "2.0.email", "4.0.sms"}  # the `quick` policy's four sends


@pytest.fixture
def cluster_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    monkeypatch.delenv("REDIS_URL", raising=False)
    queue = EmbeddedRedis(tmp_path / "queue", persist=False).start()
    try:
        with redis_cluster(tmp_path / "cluster") as url:
            extra = f"redis: {{url: '{url}', queue_url: '{queue.url}', shards: {SHARDS}}}\n"
            yield load_settings(write_config(tmp_path, extra=extra))
    finally:
        queue.stop()


def _nodes_of(url: str, ids: list[str]) -> set[str]:
    hosts = [h.rsplit(":", 1) for h in url.removeprefix("redis+cluster://").split(",")]
    cluster = RedisCluster(startup_nodes=[ClusterNode(h, int(p)) for h, p in hosts])
    try:
        return {cluster.get_node_from_key(keys.notification(nid)).name for nid in ids}
    finally:
        cluster.close()


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "gateway.cli", "worker", "--config", str(settings.path)]
    with log.open("wb") as out:
        return subprocess.Popen(args, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=out)


def _post(api: TestClient, body: dict[str, Any], key: str) -> Any:
    return api.post("/v1/notifications", json=body, headers={**AUTH, "Idempotency-Key": key})


def _settled(api: TestClient, ids: list[str], within_s: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + within_s
    while True:
        views = {nid: api.get(f"/v1/notifications/{nid}", headers=AUTH).json() for nid in ids}
        if all(v["status"] != "active" for v in views.values()) or time.monotonic() > deadline:
            return views
        time.sleep(0.5)


def test_the_whole_flow_runs_on_a_three_master_cluster(cluster_settings: Settings, tmp_path: Path) -> None:
    settings = cluster_settings
    holder = RulesHolder(settings)
    assert not holder.reload()
    worker = _worker(settings, tmp_path / "worker.log")
    try:
        with TestClient(create_app(settings, store_for(settings), holder)) as api:
            accepted = []
            for i in range(COUNT):
                body = intent(event="quick.ping", correlation_key=f"talk-{i % 3}-{i}")
                response = _post(api, body, f"key-{i}")
                assert response.status_code == 202, response.text
                accepted.append(response.json()["id"])
            # the same request again names the same notification; another body under that key is refused
            assert (
                _post(api, intent(event="quick.ping", correlation_key="talk-0-0"), "key-0").json()["id"] == accepted[0]
            )
            assert _post(api, intent(event="quick.other"), "key-0").status_code == 409
            stopped = [nid for i, nid in enumerate(accepted) if i % 3 == 0]
            for i in range(0, COUNT, 3):
                answer = api.post(
                    "/v1/events", json={"type": "responded", "correlation_key": f"talk-0-{i}"}, headers=AUTH
                )
                assert answer.status_code == 200, answer.text

            # masked sessions: their keys share one slot ({mask}), so their scripts and WATCH/MULTI run there
            people = [{"id": "buyer-7", "phone": "+14155550199"}, {"id": "seller-42", "phone": "+4915112345678"}]
            opened = api.post(
                "/v1/masked-sessions", json={"participants": people, "correlation_key": "c-1"}, headers=AUTH
            )
            assert opened.status_code == 201, opened.text
            again = api.post(
                "/v1/masked-sessions", json={"participants": people, "correlation_key": "c-1"}, headers=AUTH
            )
            assert again.json()["id"] == opened.json()["id"]  # the open pair is found, not opened twice
            closed = api.delete(f"/v1/masked-sessions/{opened.json()['id']}", headers=AUTH)
            assert closed.status_code in (200, 204), closed.text

            views = _settled(api, accepted, within_s=60)
            outbox = api.get("/v1/outbox", params={"limit": 1000}, headers=AUTH).json()["messages"]
            metrics = api.get("/metrics", headers=OPS).text
    finally:
        worker.terminate()
        worker.wait(timeout=15)

    assert len({keys.shard_of(nid) for nid in accepted}) > 1
    assert len(_nodes_of(str(settings.redis_url), accepted)) == 3  # every master holds notifications
    assert {nid for nid, v in views.items() if v["status"] == "stopped"} == set(stopped)
    assert all(v["status"] == "completed" for nid, v in views.items() if nid not in stopped), (
        tmp_path / "worker.log"
    ).read_text()[-3000:]
    sent = [(m["notification_id"], m["attempt"]) for m in outbox]
    assert len(sent) == len(set(sent))  # nothing twice
    for nid in set(accepted) - set(stopped):
        assert {a for n, a in sent if n == nid} == QUICK_SENDS
    assert f"parley_intents_accepted_total {float(COUNT)}" in metrics
    assert 'parley_stops_total{event="responded"} ' + f"{float(len(stopped))}" in metrics


def test_a_cluster_url_needs_a_queue_redis_beside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = write_config(tmp_path, extra="redis: {url: 'redis+cluster://127.0.0.1:7000'}\n")
    with pytest.raises(Exception, match=r"config.yaml:\d+:\d+: redis.*queue_url"):
        load_settings(config)
