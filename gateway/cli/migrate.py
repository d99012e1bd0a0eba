"""`parley migrate-keys`: move what Parley 0.1 kept in Redis to the key names of 0.2.

0.2 hash-tags every key of a notification with its shard, and every masking key with `{mask}`, so
that on a Redis Cluster each script runs on one slot (gateway/state/keys.py, masking/keys.py).
0.1 ran on one Redis only, and its notifications are all in shard 0 (their ids carry no shard).
Run once, with the API and the workers stopped, against the Redis 0.1 used; running it again moves
nothing. Renames keep each key's TTL. The outbox lists and the counters keep their names (0.2 reads
them as they are).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import redis
from rq import Worker

from gateway.cli.run import production_settings
from gateway.state import keys
from gateway.state.connection import is_cluster, sync_client
from masking import keys as masking_keys

OLD_NOTIFICATION = "parley:n:"
OLD_DUE = "parley:due"
OLD_MASK = "parley:mask:"
SESSION_KEY_FIELDS = ("held_a", "held_b", "pair", "usage")  # key names a masked session keeps (masking/store.py)


def register(commands: Any) -> None:
    parser = commands.add_parser("migrate-keys", help="move Parley 0.1's Redis data to 0.2's key names (run once)")
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    found = production_settings(args, "migrate-keys")  # the settings `parley serve` reads
    if found is None:
        return 1
    _, url = found
    if is_cluster(url):
        print("parley migrate-keys: Parley 0.1 ran on one Redis: point it at that one", file=sys.stderr)
        return 1
    client = sync_client(url)
    try:
        if Worker.all(connection=client):
            print("parley migrate-keys: workers are running: stop them (and the API) first", file=sys.stderr)
            return 1
        moved = migrate(client)
    finally:
        client.close()
    print(", ".join(f"{count} {what}" for what, count in sorted(moved.items())) or "nothing to move: already done")
    return 0


def migrate(client: redis.Redis) -> Counter[str]:
    """Rename 0.1's keys; returns how many of each kind were moved."""
    moved: Counter[str] = Counter()
    for raw in list(client.scan_iter(match=OLD_NOTIFICATION + "*", count=1000)):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        nid, _, suffix = name.removeprefix(OLD_NOTIFICATION).partition(":")
        client.rename(name, keys.notification(nid) + (f":{suffix}" if suffix else ""))
        moved["notification keys"] += 1
    if client.exists(OLD_DUE):
        # ZUNIONSTORE keeps any due time 0.2 has written meanwhile (a worker started too early)
        moved["due notifications"] += int(client.zunionstore(keys.due(0), [keys.due(0), OLD_DUE], aggregate="MIN"))
        client.delete(OLD_DUE)
    for raw in list(client.scan_iter(match=OLD_MASK + "*", count=1000)):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        new = masking_keys.PREFIX + name.removeprefix(OLD_MASK)
        client.rename(name, new)
        moved["masking keys"] += 1
        if client.type(new) == b"hash" and client.hexists(new, "held_a"):  # a session: the keys it names
            _rename_session_fields(client, new)
    return moved


def _rename_session_fields(client: redis.Redis, session: str) -> None:
    for field, value in zip(SESSION_KEY_FIELDS, client.hmget(session, list(SESSION_KEY_FIELDS)), strict=True):
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        if text.startswith(OLD_MASK):
            client.hset(session, field, masking_keys.PREFIX + text.removeprefix(OLD_MASK))
