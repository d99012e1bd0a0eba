"""config.yaml's tenants: every problem with its place, and keys that name exactly one tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import hash_key, load_settings
from rules.problems import RulesError

RULES = """rules:
  version: 1
  policies:
    - name: p
      match: {event: e}
      steps: [{send: email, template: t}]
"""


def test_one_api_key_for_two_tenants_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "tenants:\n"
        "  acme:\n    keys: [{env: ACME_KEY}]\n"
        f"  globex:\n    keys: [{{sha256: {hash_key('k-1')}}}]\n" + RULES
    )
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={"ACME_KEY": "k-1"})
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (5, "tenants.globex.keys[0]")
    assert "the same API key as tenant 'acme'" in problem.message


def test_each_key_finds_its_own_tenant_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "tenants:\n  acme:\n    keys: [{env: ACME_KEY}, {env: ACME_OLD}]\n  globex:\n    keys: [{env: GLOBEX_KEY}]\n"
        + RULES
    )
    settings = load_settings(path, env={"ACME_KEY": "a-new", "ACME_OLD": "a-old", "GLOBEX_KEY": "g"})
    found = {key: (t.name if (t := settings.tenant_for_key(key)) else None) for key in ("a-new", "a-old", "g", "x", "")}
    assert found == {"a-new": "acme", "a-old": "acme", "g": "globex", "x": None, "": None}


def test_a_lease_too_short_for_a_providers_timeout_is_refused_at_that_timeout(tmp_path: Path) -> None:
    # A worker starts no call that could outlast its lease: with 30 s for SMTP and a 40 s lease,
    # only the first 10 s of every job could send email.
    path = tmp_path / "config.yaml"
    path.write_text(
        "worker: {lease: 40s}\n"
        "providers:\n"
        "  email:\n    host: smtp.example.org\n    timeout: 30\n    default: {from: a@example.org}\n"
        "  sms:\n    default: {from_number: '+15005550006'}\n" + RULES
    )
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={})
    [problem] = caught.value.problems  # Twilio's 15 s fits
    assert (problem.line, problem.path) == (5, "providers.email.timeout")
    assert "worker.lease (40s) must be at least twice this timeout (30s)" in problem.message
    path.write_text(path.read_text().replace("lease: 40s", "lease: 60s"))
    assert load_settings(path, env={}).lease.total_seconds() == 60
