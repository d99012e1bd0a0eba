"""Scoped keys: roles per route, expiry, rotation without a restart, and server.docs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from gateway.access import hash_key
from gateway.embedded import EmbeddedRedis
from tests.fixtures import Clock
from tests.security.access_support import Api, intent, session_body, write

TENANTS = f"""
acme:
  keys:
    - {{id: backend, sha256: {hash_key("acme-backend")}, roles: [ingest, events, read]}}
    - {{id: ingest-only, sha256: {hash_key("acme-ingest")}, roles: [ingest]}}
    - {{id: call-centre, sha256: {hash_key("acme-calls")}, roles: [calls]}}
    - {{id: masking, sha256: {hash_key("acme-masking")}, roles: [masking]}}
    - {{id: acme-admin, sha256: {hash_key("acme-admin")}, roles: [admin]}}
    - {{id: legacy, sha256: {hash_key("acme-legacy")}}}
    - {{id: temp, sha256: {hash_key("acme-temp")}, expires: "2026-11-23T11:00:00Z"}}
  proxy_numbers: ["+14155550150", "+14155550151"]
ops:
  admin: true
  keys:
    - {{id: ops-admin, sha256: {hash_key("ops-admin")}, roles: [admin]}}
    - {{id: ops-legacy, sha256: {hash_key("ops-legacy")}}}
"""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def env(redis_server: EmbeddedRedis, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)


@pytest.fixture
def api(env: None, tmp_path: Path, clock: Clock) -> Iterator[Api]:
    instance = Api(write(tmp_path, TENANTS), clock)
    yield instance
    instance.close()


@pytest.mark.parametrize(
    ("key", "method", "path", "body", "allowed"),
    [
        ("acme-ingest", "POST", "/v1/notifications", intent(), True),
        ("acme-ingest", "GET", "/v1/outbox", None, False),
        ("acme-ingest", "POST", "/v1/events", {"type": "responded", "correlation_key": "c"}, False),
        ("acme-backend", "GET", "/v1/outbox", None, True),
        ("acme-backend", "POST", "/v1/masked-sessions", session_body(), False),
        ("acme-calls", "POST", "/v1/notifications", intent(), False),
        ("acme-calls", "GET", "/v1/masking/numbers", None, False),
        ("acme-calls", "GET", "/v1/outbox", None, False),
        ("acme-masking", "POST", "/v1/masked-sessions", session_body(), True),
        ("acme-masking", "GET", "/v1/audit", None, False),
        ("acme-admin", "GET", "/v1/audit", None, True),
        ("acme-admin", "POST", "/v1/notifications", intent(), False),
        ("acme-legacy", "POST", "/v1/notifications", intent(), True),
        ("acme-legacy", "GET", "/v1/audit", None, False),
        ("ops-legacy", "GET", "/v1/audit", None, True),
    ],
)
def test_a_key_reaches_only_the_routes_of_its_roles(
    api: Api, key: str, method: str, path: str, body: object, allowed: bool
) -> None:
    response = api.call(method, path, key, json=body)
    if allowed:
        assert response.status_code < 300, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
        assert "role" in response.json()["message"]


def test_a_call_centre_key_can_place_a_call_and_nothing_else(api: Api) -> None:
    opened = api.call("POST", "/v1/masked-sessions", "acme-masking", json=session_body())
    assert opened.status_code == 201, opened.text
    call = {"agent": {"id": "agent-1", "phone": "+14155550177"}, "session_id": opened.json()["id"],
            "participant_id": "seller-42"}  # fmt: skip
    assert api.call("POST", "/v1/calls", "acme-calls", json=call).status_code == 201
    assert api.call("GET", f"/v1/masked-sessions/{opened.json()['id']}", "acme-calls").status_code == 403
    assert api.call("DELETE", f"/v1/masked-sessions/{opened.json()['id']}", "acme-calls").status_code == 403


def test_tenant_admin_reads_its_audit_log_but_only_an_operator_reloads_rules(api: Api) -> None:
    assert api.call("GET", "/v1/audit", "acme-admin").status_code == 200
    refused = api.call("POST", "/v1/admin/rules/reload", "acme-admin")
    assert refused.status_code == 403 and "operator tenant" in refused.json()["message"]
    assert api.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 200


def test_an_expired_key_is_refused_from_its_expiry_on(api: Api, clock: Clock) -> None:
    assert api.call("GET", "/v1/outbox", "acme-temp").status_code == 200
    clock.advance(timedelta(hours=1))
    refused = api.call("GET", "/v1/outbox", "acme-temp")
    assert refused.status_code == 401
    assert refused.json() == {"error": "unauthorized", "message": "this API key has expired; use its replacement"}
    assert api.call("GET", "/v1/outbox", "acme-backend").status_code == 200


def test_keys_rotate_without_a_restart_in_every_api_process(env: None, tmp_path: Path, clock: Clock) -> None:
    """Add the new key, reload (both work), drop the old one, reload: the other process follows too."""
    old, new = f"{{id: old, sha256: {hash_key('old-key')}}}", f"{{id: new, sha256: {hash_key('new-key')}}}"
    ops = f"ops:\n  admin: true\n  keys: [{{sha256: {hash_key('ops-admin')}}}]"
    path = write(tmp_path, f"acme:\n  keys: [{old}]\n{ops}")
    first, second = Api(path, clock), Api(path, clock)
    try:
        assert first.call("GET", "/v1/outbox", "new-key").status_code == 401
        write(tmp_path, f"acme:\n  keys: [{old}, {new}]\n{ops}")
        assert first.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 200
        assert first.call("GET", "/v1/outbox", "new-key").status_code == 200
        assert first.call("GET", "/v1/outbox", "old-key").status_code == 200
        assert _eventually(lambda: second.call("GET", "/v1/outbox", "new-key").status_code == 200)
        write(tmp_path, f"acme:\n  keys: [{new}]\n{ops}")
        assert first.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 200
        assert first.call("GET", "/v1/outbox", "old-key").status_code == 401
        assert _eventually(lambda: second.call("GET", "/v1/outbox", "old-key").status_code == 401)
    finally:
        first.close()
        second.close()


def test_a_reload_with_a_broken_key_list_keeps_the_keys_in_force(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(path.read_text().replace("roles: [ingest]", "roles: [ingest, superuser]"))
    refused = api.call("POST", "/v1/admin/rules/reload", "ops-admin")
    assert refused.status_code == 422
    assert any("tenants.acme.keys[1].roles[1]" in m for m in refused.json()["messages"]), refused.json()
    assert api.call("POST", "/v1/notifications", "acme-ingest", json=intent()).status_code == 202


def test_docs_and_schema_can_be_turned_off(env: None, tmp_path: Path, clock: Clock) -> None:
    hidden = Api(write(tmp_path, TENANTS, server="docs: false"), clock)
    try:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert hidden.call("GET", path, None).status_code == 404
        assert hidden.call("GET", "/healthz", None).status_code == 200
    finally:
        hidden.close()


def _eventually(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False
