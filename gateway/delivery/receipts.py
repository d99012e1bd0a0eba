"""A provider's receipt applied to the attempt it is about: the path of a receipt after its webhook
(gateway/http/webhooks.py) checked the signature and found the attempt."""

from __future__ import annotations

from datetime import datetime

from gateway import metrics
from gateway.state.records import Delivery, log_entry
from gateway.state.store import Store
from rules.status import DeliveryStatus, can_move


async def apply_receipt(
    store: Store, nid: str, attempt: str, new: DeliveryStatus, now: datetime, error: str | None
) -> bool:
    """Move one delivery along the transition table; a failure makes the fallback run."""
    for _ in range(5):  # compare-and-set: retry if the worker wrote the attempt meanwhile
        raw = await store.raw_attempt(nid, attempt)
        if raw is None:
            return False
        before = Delivery.from_stored(attempt, raw)
        if not can_move(before.status, new):
            return False  # a repeat or an out-of-order receipt: nothing to do
        after = before.model_copy(update={"status": new, "updated_at": now, "error": error or before.error})
        note = log_entry(now, f"{before.channel} {new.value}: {error}", attempt=attempt) if error else None
        # Compare against the exact stored text, not a re-serialisation of it.
        if await store.receipt_raw(nid, attempt, raw, after, now, note):
            await store.count(metrics.send_field(before.channel, f"receipt_{new.value}"))
            return True
    return False
