"""What GET /v1/notifications/{id} shows: state, deliveries (addresses masked) and a timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.state.records import Stored, iso
from rules.durations import from_ms


def notification_view(stored: Stored, log: list[dict[str, Any]]) -> dict[str, Any]:
    deliveries = sorted(stored.deliveries.values(), key=lambda d: (d.at, d.step, d.run, d.key))
    return {
        "id": stored.id,
        "status": stored.status.value,
        "event": stored.intent.event,
        "policy": {"name": stored.policy, "version": stored.version},
        "correlation_key": stored.correlation_key,
        "created_at": iso(stored.created_at),
        "next_step_at": iso(from_ms(stored.due_ms)) if stored.due_ms and stored.status.value == "active" else None,
        "ended": {"at": iso(stored.final_at), "reason": stored.final_reason} if stored.final_at else None,
        "deliveries": [
            {
                "attempt": d.key,
                "step": d.step,
                "run": d.run,
                "channel": d.channel.value,
                "to": d.target,
                "address": d.address,
                "template": d.template,
                "status": d.status.value,
                "reason": d.reason,
                "instead_of": d.fallback_for.value if d.fallback_for else None,
                "provider_id": d.provider_id,
                "error": d.error,
                "tries": d.tries,
                "history": [{"at": iso(t.at), "outcome": t.outcome.value, "detail": t.detail} for t in d.history],
                "retry_at": iso(d.retry_at) if d.retry_at else None,
                "sms": {"encoding": d.encoding, "segments": d.segments} if d.segments is not None else None,
                "at": iso(d.at),
                "updated_at": iso(d.updated_at),
            }
            for d in deliveries
        ],
        "timeline": _timeline(stored, log),
    }


def _timeline(stored: Stored, log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [{"at": iso(stored.created_at), "what": "accepted", "policy": stored.policy}]
    for d in stored.deliveries.values():
        what = "skipped" if d.kind.value == "skip" else d.kind.value
        entries.append(
            {"at": iso(d.at), "what": what, "channel": d.channel.value, "attempt": d.key, "reason": d.reason}
        )
    for e in stored.events:
        entries.append({"at": iso(e.at), "what": f"event:{e.type.value}"})
    entries.extend(
        {"at": iso(datetime.fromisoformat(item["at"])), "what": "note", "message": item["message"]} for item in log
    )
    if stored.final_at:
        entries.append({"at": iso(stored.final_at), "what": stored.status.value, "reason": stored.final_reason})
    order = {"accepted": 0, "note": 2}
    # Ties (one step's channels share a moment) are broken by attempt key, so the order is stable.
    return sorted(
        entries, key=lambda e: (e["at"], order.get(e["what"], 1), e.get("attempt") or "", e.get("message") or "")
    )
