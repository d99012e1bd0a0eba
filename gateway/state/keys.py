"""Every Redis key Parley uses, and who owns it (what deletes it, or its TTL).

All keys share the `parley:` prefix so one Redis can host other data too.
"""

from __future__ import annotations

from rules.phone import digest

PREFIX = "parley:"

# ZSET of notification ids scored by due time in ms. Owner: the worker removes
# a member when its notification finishes; the stop script removes it on stop.
DUE = PREFIX + "due"

# HASH of counters for /metrics (shared by every process). Bounded: fixed field set.
METRICS = PREFIX + "metrics"

# RQ queue name (RQ owns its keys and their TTLs).
QUEUE = "parley"


def notification(nid: str) -> str:
    """HASH: the notification. No TTL while active; expires `retention` after it ends."""
    return f"{PREFIX}n:{nid}"


def notification_log(nid: str) -> str:
    """LIST: timeline entries beyond attempts and events. Same lifetime as the notification."""
    return f"{PREFIX}n:{nid}:log"


def policy(digest: str) -> str:
    """STRING: a policy snapshot by content digest. TTL refreshed by every notification that uses it."""
    return f"{PREFIX}policy:{digest}"


def idempotency(tenant: str, key: str) -> str:
    """STRING: `id` of the notification created with this Idempotency-Key, plus body hash. TTL 24 h."""
    return f"{PREFIX}idem:{tenant}:{key}"


def correlation(tenant: str, key: str) -> str:
    """SET: active notification ids with this correlation key. Members removed when they end; TTL = retention."""
    return f"{PREFIX}corr:{tenant}:{key}"


def outbox(tenant: str) -> str:
    """LIST: the outbox provider's messages, newest first. Trimmed to OUTBOX_KEEP; TTL = retention."""
    return f"{PREFIX}outbox:{tenant}"


def outbox_sent(nid: str) -> str:
    """SET: attempt keys the outbox already accepted for a notification (send once). Same lifetime."""
    return f"{PREFIX}n:{nid}:outbox"


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
