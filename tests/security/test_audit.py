"""The audit log: administrative and privacy-relevant actions, by tenant and key, readable by the
tenant's admin keys only, paged newest first, and written to the log as JSON lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.access import hash_key
from gateway.embedded import EmbeddedRedis
from tests.fixtures import Clock
from tests.security.access_support import PHONE_A, PHONE_B, Api, session_body, write

TENANTS = f"""
acme:
  keys:
    - {{id: integration, sha256: {hash_key("acme-main")}, roles: [masking, calls, read]}}
    - {{id: acme-admin, sha256: {hash_key("acme-admin")}, roles: [admin]}}
  proxy_numbers: ["+14155550150", "+14155550151"]
globex:
  keys: [{{id: globex-admin, sha256: {hash_key("globex-admin")}, roles: [admin, masking]}}]
ops:
  admin: true
  keys: [{{id: ops-admin, sha256: {hash_key("ops-admin")}, roles: [admin]}}]
"""


@pytest.fixture
def api(redis_server: EmbeddedRedis, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Iterator[Api]:  # fmt: skip
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    instance = Api(write(tmp_path, TENANTS), Clock(), client=("192.0.2.44", 5000))
    yield instance
    instance.close()


def _entries(api: Api, key: str, **params: object) -> dict[str, object]:
    response = api.call("GET", "/v1/audit", key, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_masking_and_calls_are_audited_with_key_and_address_and_no_real_number(api: Api) -> None:
    numbers = api.call("POST", "/v1/masking/numbers", "acme-main", json={"numbers": ["+14155550152"]})
    assert numbers.status_code == 200, numbers.text
    sid = api.call("POST", "/v1/masked-sessions", "acme-main", json=session_body()).json()["id"]
    call = {"agent": {"id": "agent-1", "phone": "+14155550177"}, "session_id": sid, "participant_id": "seller-42"}
    assert api.call("POST", "/v1/calls", "acme-main", json=call).status_code == 201
    assert api.call("GET", f"/v1/masked-sessions/{sid}", "acme-main").status_code == 200
    assert api.call("DELETE", f"/v1/masked-sessions/{sid}", "acme-main").status_code == 200
    assert api.call("DELETE", "/v1/masking/numbers/+14155550152", "acme-main").status_code == 204
    entries = _entries(api, "acme-admin")["entries"]
    assert [e["action"] for e in entries] == [  # type: ignore[union-attr]
        "numbers.remove", "session.close", "session.read", "call.place", "session.open", "numbers.add",
    ]  # fmt: skip
    for entry in entries:  # type: ignore[union-attr]
        assert (entry["tenant"], entry["key_id"], entry["from"]) == ("acme", "integration", "192.0.2.44")
        assert entry["at"].startswith("2026-11-23T10:00:00")
    assert sid in {e["target"] for e in entries}  # type: ignore[union-attr]
    text = json.dumps(entries)
    assert PHONE_A not in text and PHONE_B not in text and "+14155550177" not in text


def test_each_tenant_reads_only_its_own_audit_log_with_an_admin_key(api: Api) -> None:
    assert api.call("POST", "/v1/masked-sessions", "acme-main", json=session_body()).status_code == 201
    assert _entries(api, "globex-admin")["entries"] == []
    assert len(_entries(api, "acme-admin")["entries"]) == 1  # type: ignore[arg-type]
    assert api.call("GET", "/v1/audit", "acme-main").status_code == 403


def test_rules_reloads_are_audited_refused_or_not(api: Api, tmp_path: Path) -> None:
    assert api.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 200
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("steps:", "stepz:", 1))
    assert api.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 422
    entries = _entries(api, "ops-admin")["entries"]
    assert [(e["action"], e["outcome"]) for e in entries] == [("rules.reload", "refused"), ("rules.reload", "ok")]  # type: ignore[union-attr]


def test_the_audit_log_pages_newest_first(api: Api) -> None:
    for _ in range(5):
        assert api.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 200
    first = _entries(api, "ops-admin", limit=2)
    second = _entries(api, "ops-admin", limit=2, before=first["next"])
    third = _entries(api, "ops-admin", limit=2, before=second["next"])
    ids = [e["id"] for page in (first, second, third) for e in page["entries"]]  # type: ignore[attr-defined]
    assert len(ids) == 5 and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))), reverse=True)
    assert third["next"] is None
    bad = api.call("GET", "/v1/audit", "ops-admin", params={"before": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["path"] == "query.before"


def test_every_entry_is_also_a_json_log_line(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="parley.audit"):
        assert api.call("POST", "/v1/admin/rules/reload", "ops-admin").status_code == 200
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "parley.audit"]
    assert (line["action"], line["tenant"], line["key_id"], line["from"]) == ("rules.reload", "ops", "ops-admin",
                                                                             "192.0.2.44")  # fmt: skip
