"""`parley migrate-keys`: an escalation and a masked session that Parley 0.1 kept under its key names
carry on under 0.2's after the migration (a real Redis; the data is put back under 0.1's names)."""

from __future__ import annotations

import redis

from gateway.cli import main
from gateway.state import keys
from masking import keys as masking_keys
from tests.fixtures import Harness
from tests.masking.helpers import open_session

OLD_MASK = "parley:mask:"


def _as_parley_0_1_kept_it(client: redis.Redis) -> None:
    """0.1's names: parley:n:<id>…, parley:due, parley:mask:… (and a session naming its keys so)."""
    for raw in list(client.scan_iter(match=keys.notification_prefix(0) + "*")):
        client.rename(raw, b"parley:n:" + raw.removeprefix(keys.notification_prefix(0).encode()))
    client.rename(keys.due(0), "parley:due")
    for raw in list(client.scan_iter(match=masking_keys.PREFIX + "*")):
        old = OLD_MASK + raw.decode().removeprefix(masking_keys.PREFIX)
        client.rename(raw, old)
        if client.type(old) == b"hash" and client.hexists(old, "held_a"):
            for field in ("held_a", "held_b", "pair", "usage"):
                value = (client.hget(old, field) or b"").decode()
                client.hset(old, field, value.replace(masking_keys.PREFIX, OLD_MASK))


def test_an_escalation_and_a_session_of_0_1_carry_on_after_migrate_keys(harness: Harness) -> None:
    nid = harness.notify(event="slow.ping", correlation_key="talk-1")  # email now, another in 10 days
    session = open_session(harness, correlation_key="pair-1").json()
    _as_parley_0_1_kept_it(harness.redis)
    assert harness.call("GET", f"/v1/notifications/{nid}").status_code == 404  # 0.2 does not see it yet

    assert main(["migrate-keys", "--config", str(harness.settings.path)]) == 0
    assert main(["migrate-keys", "--config", str(harness.settings.path)]) == 0  # again: nothing moves

    assert harness.work() == 1  # its first step was due, and runs
    assert harness.sent(nid) == [("email", "inquiry-new")]
    stopped = harness.call("POST", "/v1/events", json={"type": "responded", "correlation_key": "talk-1"}).json()
    assert stopped["stopped"] == [nid]  # the correlation index still finds it
    assert harness.call("DELETE", f"/v1/masked-sessions/{session['id']}").status_code in (200, 204)
    usage = {k.decode(): int(v) for k, v in harness.redis.hgetall(masking_keys.mask_usage("acme")).items()}
    assert usage and set(usage.values()) == {0}  # closing freed both numbers under their new names
    assert not list(harness.redis.scan_iter(match=OLD_MASK + "*"))
    assert not list(harness.redis.scan_iter(match="parley:n:*")) and not harness.redis.exists("parley:due")
