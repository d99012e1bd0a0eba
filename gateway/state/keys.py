"""Every Redis key Parley uses, and who owns it (what deletes it, or its TTL).

All keys share the `parley:` prefix so one Redis can host other data too.

A notification's keys, and the due set and counters its scripts touch, carry the hash tag of its
**shard** (`parley:{3}:n:<id>`, `parley:{3}:due`): on a Redis Cluster every script then touches one
slot. The shard is written into the id when the notification is created (`n_03-<29 hex digits>`:
two hex digits, then a dash), so its keys are found from the id alone, whatever `redis.shards` says
later; an id without the dash (Parley 0.1's `n_<32 hex digits>`) is in shard 0. Keys of a tenant
(indexes, idempotency, outbox messages that belong to no notification) are in slots of their own
and never in the same script as a notification's.
"""

from __future__ import annotations

import secrets

from rules.phone import digest

PREFIX = "parley:"
MAX_SHARDS = 256  # two hex digits of the id

# HASH of counters for /metrics written outside scripts (the workers' per-batch tallies). Bounded: fixed
# field set. Counters a script bumps live in its shard's hash (shard_metrics); /metrics adds them up.
METRICS = PREFIX + "metrics"

# RQ queue name (RQ owns its keys and their TTLs).
QUEUE = "parley"


def new_id(shards: int) -> str:
    """A new notification id in a random one of `shards` shards."""
    # 34 characters, as in Parley 0.1 (116 random bits): one more made an email's Message-ID line longer
    # than 78 characters for a sender domain like acme.example, and Python's email package folded it
    return f"n_{secrets.randbelow(shards):02x}-{secrets.token_hex(15)[:29]}"


def shard_of(nid: str) -> int:
    """The shard written into a notification id; 0 for an id of Parley 0.1, or a string that is no id."""
    if nid[4:5] != "-":
        return 0
    try:
        return int(nid[2:4], 16)
    except ValueError:
        return 0


def _tagged(shard: int) -> str:
    return f"{PREFIX}{{{shard}}}:"


def due(shard: int) -> str:
    """ZSET of the shard's notification ids scored by due time in ms. Owner: the worker removes a member
    when its notification finishes; the stop script removes it on stop."""
    return _tagged(shard) + "due"


def shard_metrics(shard: int) -> str:
    """HASH of the counters the shard's scripts bump (intents accepted, stops). Bounded: fixed field set."""
    return _tagged(shard) + "metrics"


def notification_prefix(shard: int) -> str:
    """What a notification key of this shard starts with (the LEASE script builds keys from it)."""
    return _tagged(shard) + "n:"


def notification(nid: str) -> str:
    """HASH: the notification. No TTL while active; expires `retention` after it ends."""
    return f"{notification_prefix(shard_of(nid))}{nid}"


def notification_log(nid: str) -> str:
    """LIST: timeline entries beyond attempts and events. Same lifetime as the notification."""
    return f"{notification_prefix(shard_of(nid))}{nid}:log"


def policy(digest: str) -> str:
    """STRING: a policy snapshot by content digest. TTL refreshed by every notification that uses it."""
    return f"{PREFIX}policy:{digest}"


def idempotency(tenant: str, key: str) -> str:
    """STRING: `id` of the notification created with this Idempotency-Key, plus body hash. TTL 24 h."""
    return f"{PREFIX}idem:{tenant}:{key}"


def correlation(tenant: str, key: str) -> str:
    """SET: active notification ids with this correlation key. Members removed when they end; TTL = retention."""
    return f"{PREFIX}corr:{tenant}:{key}"


def outbox(tenant: str, shard: int | None = None) -> str:
    """LIST: the outbox provider's messages, newest first: one list per shard for messages of
    notifications (the OUTBOX script keeps a message under the notification's fence), and one
    (`shard` None) for messages of no notification (masked-session relays). Trimmed to OUTBOX_KEEP
    each; TTL = retention. GET /v1/outbox merges them by time."""
    return f"{PREFIX}outbox:{tenant}" if shard is None else f"{_tagged(shard)}outbox:{tenant}"


def outbox_sent(nid: str) -> str:
    """SET: attempt keys the outbox already accepted for a notification (send once). Same lifetime."""
    return f"{notification_prefix(shard_of(nid))}{nid}:outbox"


def rules_generation() -> str:
    """STRING: bumped on every successful rules reload so every API process reloads. No TTL (one key)."""
    return f"{PREFIX}rules:generation"


OUTBOX_KEEP = 1000


def rate_limit(window_key: str) -> str:
    """STRING: hits in one rate-limit window (`limits`' key names the tenant or key, the limit and the
    window). TTL: the window, set by the first hit (gateway/http/ratelimit.py)."""
    return f"{PREFIX}rl:{window_key}"


def audit(tenant: str) -> str:
    """STREAM: the tenant's audit log, oldest first. Trimmed to `audit.max_entries` and `audit.retention`
    on every append; TTL = retention, renewed by every append (gateway/state/audit.py)."""
    return f"{PREFIX}audit:{tenant}"


def phone_index(tenant: str, phone: str) -> str:
    """SET: active notification ids whose recipient has this phone (for inbound replies).
    The number is hashed so it never appears in key names. Members removed when they end; TTL = retention."""
    return f"{PREFIX}phone:{tenant}:{digest(phone)}"


def provider_index(provider_id: str) -> str:
    """STRING: `<notification id> <attempt key>` for a provider's message id, on channels that get receipts
    (records.RECEIPTS). TTL = retention."""
    return f"{PREFIX}pid:{provider_id}"


def opted_out(tenant: str) -> str:
    """SET: digests of phone numbers that sent STOP to this tenant's numbers. No TTL: owned by START."""
    return f"{PREFIX}optout:{tenant}"


def webhook_seen(source: str, delivery_id: str) -> str:
    """STRING: a webhook delivery already processed (replays are ignored). TTL 24 h; Slack's 11 minutes
    (webhooks.SLACK_REPLAY_TTL_S: past the window in which its signature lets a request be replayed)."""
    return f"{PREFIX}seen:{source}:{delivery_id}"
