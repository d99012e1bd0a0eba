"""Issue 17: while Redis is down the API says so in its error shape, loses nothing it accepted, and
recovers by itself when Redis is back (a real Redis server stopped and started on the same port)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.config import load_settings
from gateway.embedded import EmbeddedRedis
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state.store import Store
from tests.fixtures import KEYS, intent, write_config

AUTH = {"Authorization": f"Bearer {KEYS['acme']}"}


def _until_accepted(api: TestClient, body: dict[str, Any], within_s: float = 5.0) -> Any:
    """The first answer that is not a 503: connections opened before the restart may fail once."""
    deadline = time.monotonic() + within_s
    while True:
        response = api.post("/v1/notifications", json=body, headers=AUTH)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_redis_down_is_a_503_json_with_retry_after_and_the_api_recovers_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=True).start()
    for name, key in KEYS.items():
        monkeypatch.setenv(f"{name.upper()}_KEY", key)
    settings = load_settings(write_config(tmp_path))
    holder = RulesHolder(settings)
    assert not holder.reload()
    try:
        with TestClient(create_app(settings, Store.connect(server.url, settings.retention), holder)) as api:
            before = api.post("/v1/notifications", json=intent(), headers=AUTH)
            assert before.status_code == 202
            server.stop()

            down = api.post("/v1/notifications", json=intent(), headers=AUTH)
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/json"
            assert down.headers["retry-after"] == "1"
            assert down.json() == {
                "error": "store_unavailable",
                "message": "the state store (Redis) is unavailable; retry shortly",
            }
            read = api.get(f"/v1/notifications/{before.json()['id']}", headers=AUTH)
            assert (read.status_code, read.json()["error"]) == (503, "store_unavailable")
            ready = api.get("/readyz")
            assert (ready.status_code, ready.json()["redis"]) == (503, False)

            server = EmbeddedRedis(tmp_path / "redis", port=server.port, persist=True).start()
            again = _until_accepted(api, intent())
            assert again.status_code == 202, again.text
            kept = api.get(f"/v1/notifications/{before.json()['id']}", headers=AUTH)  # accepted before: still there
            assert kept.status_code == 200 and kept.json()["status"] == "active"
            assert api.get("/readyz").status_code == 200
    finally:
        server.stop()
