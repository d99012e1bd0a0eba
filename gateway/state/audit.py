"""The audit log: who (tenant, key) did what administrative or privacy-relevant thing, when, from where.

Entries are appended to a Redis stream per tenant (append-only: nothing in Parley edits or deletes
one; they age out after `audit.retention` or beyond `audit.max_entries`), readable with the tenant's
admin key (`GET /v1/audit`), and each is also written to the log as one JSON line (logger
`parley.audit`), for a log pipeline that keeps them longer. Entries hold ids and proxy numbers, never
a real phone number.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.access import Principal
from gateway.state.records import iso
from gateway.state.store import Store
from rules.durations import parse_duration

log = logging.getLogger("parley.audit")


class Action(StrEnum):
    RULES_RELOAD = "rules.reload"
    NUMBERS_ADD = "numbers.add"
    NUMBERS_REMOVE = "numbers.remove"
    SESSION_OPEN = "session.open"
    SESSION_CLOSE = "session.close"
    SESSION_READ = "session.read"  # a session's interactions read, recording links included
    CALL_PLACE = "call.place"


class AuditLog:
    def __init__(self, store: Store, retention: str, max_entries: int, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.retention_s = int(parse_duration(retention).total_seconds())
        self.max_entries = max_entries
        self.clock = clock

    async def record(
        self, who: Principal, action: Action, target: str, address: str, outcome: str = "ok", **detail: Any
    ) -> None:
        entry = {
            "at": iso(self.clock()), "tenant": who.name, "key_id": who.key.id, "action": action.value,
            "target": target, "from": address, "outcome": outcome, "detail": detail,
        }  # fmt: skip
        text = json.dumps(entry, separators=(",", ":"), sort_keys=True)
        log.info("%s", text)
        # Stream ids carry Redis's own clock, so the retention cut is taken from the wall clock too.
        oldest_ms = int((time.time() - self.retention_s) * 1000)
        await self.store.audit_add(who.name, text, oldest_ms, self.max_entries, self.retention_s)

    async def read(self, tenant: str, before: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Entries newest first, and the cursor for the page after them (None: no more)."""
        rows = await self.store.audit_read(tenant, before or "+", limit + 1)
        entries = [{"id": entry_id, **json.loads(text)} for entry_id, text in rows[:limit]]
        return entries, (entries[-1]["id"] if len(rows) > limit else None)
