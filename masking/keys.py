"""Every Redis key masking uses, and who owns it (what deletes it, or its TTL).

The gateway's `parley:` prefix, with the hash tag `{mask}` (gateway/state/keys.py); the masking store
(masking/store.py) is the only code that touches them.
"""

from __future__ import annotations

from rules.phone import digest

# One hash tag for every masking key: on a Redis Cluster the masking scripts (a session's number, pool,
# usage and pair at once) then run on one slot. Masking's traffic (sessions, relayed calls) is small.
PREFIX = "parley:{mask}:"

# HASH proxy number -> tenant, across tenants (a number serves one tenant). Owner: the pool API/config.
MASK_NUMBERS = PREFIX + "numbers"
# ZSET session id by expiry (ms). Owner: the session sweeper removes members as it closes them.
MASK_EXPIRY = PREFIX + "expiry"


def mask_pool(tenant: str) -> str:
    """HASH proxy number -> ISO country: the tenant's pool. Owner: config + POST/DELETE /v1/masking/numbers."""
    return f"{PREFIX}pool:{tenant}"


def mask_usage(tenant: str) -> str:
    """HASH proxy number -> open sessions using it (least-used choice). Kept by session open/close."""
    return f"{PREFIX}usage:{tenant}"


def mask_held(tenant: str, phone: str) -> str:
    """HASH proxy number -> open session id, for one participant's real number (the routing table).
    Entries removed when a session closes; TTL pushed past the latest expiry."""
    return f"{PREFIX}held:{tenant}:{digest(phone)}"


def mask_session(sid: str) -> str:
    """HASH: a session and the keys it occupies. TTL: expiry + retention."""
    return f"{PREFIX}s:{sid}"


def mask_interactions(sid: str) -> str:
    """LIST: a session's calls and messages. Same TTL as the session."""
    return f"{PREFIX}s:{sid}:log"


def mask_pair(tenant: str, correlation_key: str, phones: tuple[str, str]) -> str:
    """STRING: the open session of these two participants with this correlation key. TTL: the session's."""
    a, b = sorted(digest(p) for p in phones)
    return f"{PREFIX}pair:{tenant}:{correlation_key}:{a}:{b}"


def mask_agent_call(call_id: str) -> str:
    """STRING: an agent call's context (tenant, session, participant, agent) as JSON, so Twilio's callback
    URL carries only this opaque id. Owner: POST /v1/calls; TTL masking/store.py AGENT_CALL_TTL (5 minutes)."""
    return f"{PREFIX}agentcall:{call_id}"
