"""Every Redis key masking uses, and who owns it (what deletes it, or its TTL).

The same `parley:` prefix as the gateway's keys (gateway/state/keys.py); the masking store
(masking/store.py) is the only code that touches them.
"""

from __future__ import annotations

from rules.phone import digest

PREFIX = "parley:"

# HASH proxy number -> tenant, across tenants (a number serves one tenant). Owner: the pool API/config.
MASK_NUMBERS = PREFIX + "mask:numbers"
# ZSET session id by expiry (ms). Owner: the session sweeper removes members as it closes them.
MASK_EXPIRY = PREFIX + "mask:expiry"


def mask_pool(tenant: str) -> str:
    """HASH proxy number -> ISO country: the tenant's pool. Owner: config + POST/DELETE /v1/masking/numbers."""
    return f"{PREFIX}mask:pool:{tenant}"


def mask_usage(tenant: str) -> str:
    """HASH proxy number -> open sessions using it (least-used choice). Kept by session open/close."""
    return f"{PREFIX}mask:usage:{tenant}"


def mask_held(tenant: str, phone: str) -> str:
    """HASH proxy number -> open session id, for one participant's real number (the routing table).
    Entries removed when a session closes; TTL pushed past the latest expiry."""
    return f"{PREFIX}mask:held:{tenant}:{digest(phone)}"


def mask_session(sid: str) -> str:
    """HASH: a session and the keys it occupies. TTL: expiry + retention."""
    return f"{PREFIX}mask:s:{sid}"


def mask_interactions(sid: str) -> str:
    """LIST: a session's calls and messages. Same TTL as the session."""
    return f"{PREFIX}mask:s:{sid}:log"


def mask_pair(tenant: str, correlation_key: str, phones: tuple[str, str]) -> str:
    """STRING: the open session of these two participants with this correlation key. TTL: the session's."""
    a, b = sorted(digest(p) for p in phones)
    return f"{PREFIX}mask:pair:{tenant}:{correlation_key}:{a}:{b}"


def mask_agent_call(call_id: str) -> str:
    """STRING: an agent call's context (tenant, session, participant, agent) as JSON, so Twilio's callback
    URL carries only this opaque id. Owner: POST /v1/calls; TTL masking/store.py AGENT_CALL_TTL (5 minutes)."""
    return f"{PREFIX}mask:agentcall:{call_id}"
