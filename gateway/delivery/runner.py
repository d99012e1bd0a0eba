"""Running one due notification: plan with the engine, perform, record, schedule the next look.

Order matters for crash safety: an attempt is claimed (recorded as pending,
under the fence) before it is performed and its outcome recorded after; the
next look is scheduled last. A crash anywhere leaves the lease to expire and
the next worker resumes: recorded outcomes are not repeated, a pending attempt
is performed again with the same attempt key (the outbox accepts a key once).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from channels.addresses import mask
from channels.base import Message, Outcome, Reason, SendResult
from channels.registry import Registry
from channels.rendering.render import Renderer, RenderError
from gateway import metrics
from gateway.state.records import Delivery, Stored, log_entry
from gateway.state.store import Leased, Store
from rules.engine import AttemptReason, Kind, Plan, Planned, address_for, person, plan
from rules.model import Channel, Policy
from rules.status import DeliveryStatus, NotificationStatus

log = logging.getLogger("parley.worker")
MAX_ROUNDS = 50  # plan -> perform rounds per look; fallback chains are short


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient failures."""

    first: timedelta = timedelta(seconds=10)
    factor: float = 3.0
    cap: timedelta = timedelta(minutes=10)
    tries: int = 5  # sends in all before a transient failure counts as permanent
    jitter: float = 0.2

    def delay(self, tries: int, hint: float | None, rnd: random.Random) -> timedelta:
        base = min(self.first.total_seconds() * self.factor ** (tries - 1), self.cap.total_seconds())
        base = max(base, hint or 0.0)
        return timedelta(seconds=base * (1 + rnd.uniform(-self.jitter, self.jitter)))


@dataclass
class Runtime:
    store: Store
    channels: Registry
    renderer: Renderer
    clock: Callable[[], datetime]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rnd: random.Random = field(default_factory=random.Random)
    # Counter increments for /metrics, written once per batch by the worker (gateway.delivery.worker):
    # one round trip per notification each was a fifth of a worker's Redis traffic.
    tally: Counter[str] = field(default_factory=Counter)
    # When the running job's lease ends (time.monotonic()), set by the worker per job: adapters
    # start no provider call that could outlast it (channels.base.too_late).
    deadline: float | None = None


class Fenced(Exception):
    """Our lease ended (a stop, or another worker took over): stop touching this notification."""


async def process(rt: Runtime, leased: Leased) -> None:
    stored = await rt.store.load(leased.id)
    if stored is None or stored.status is not NotificationStatus.ACTIVE or stored.token != leased.token:
        return  # stale or duplicate job: someone else owns it now, or it is over
    policy = await rt.store.policy(stored.version)
    now = rt.clock()
    if policy is None:
        await rt.store.advance(
            stored, leased.token, next_due=None, final=("failed", now, "policy_snapshot_missing"), now=now
        )
        return
    try:
        await _retry_pending(rt, stored, policy, leased.token, now)
        result = await _play(rt, stored, policy, leased.token, now)
    except Fenced:
        return
    if result.final is not None:
        final = (result.final.status.value, result.final.at, result.final.reason)
        await rt.store.advance(stored, leased.token, next_due=None, final=final, now=now)
        return
    retries = [d.retry_at for d in stored.deliveries.values() if d.status is DeliveryStatus.PENDING and d.retry_at]
    wakes = [w for w in (result.wake_at, *retries) if w is not None]
    await rt.store.advance(stored, leased.token, next_due=min(wakes) if wakes else None, now=now)


async def _play(rt: Runtime, stored: Stored, policy: Policy, token: int, now: datetime) -> Plan:
    for _ in range(MAX_ROUNDS):
        result = plan(policy, stored.intent, stored.state(), now)
        if result.final is not None or not result.actions:
            return result
        rt.tally[metrics.STEPS] += 1
        for action in result.actions:
            await _start(rt, stored, policy, token, action, now)
    raise RuntimeError(f"notification {stored.id}: plan did not settle in {MAX_ROUNDS} rounds")


async def _start(rt: Runtime, stored: Stored, policy: Policy, token: int, action: Planned, now: datetime) -> None:
    address = address_for(policy, stored.intent, action.target, action.channel)
    delivery = Delivery.planned(action, now, token, mask(action.channel, address))
    if await _opted_out(rt, stored, action, address):
        delivery = delivery.model_copy(
            update={"kind": Kind.SKIP, "status": DeliveryStatus.SKIPPED, "reason": AttemptReason.OPTED_OUT}
        )
        action = replace(action, kind=Kind.SKIP)
        await rt.store.note(
            stored.id, log_entry(now, f"{action.channel} skipped: the number opted out (STOP)", attempt=delivery.key)
        )
    if not await rt.store.claim(stored.id, token, delivery):
        raise Fenced
    stored.deliveries[delivery.key] = delivery
    if action.kind is Kind.SKIP:
        rt.tally[metrics.send_field(action.channel, "skipped")] += 1
        return
    await _send(rt, stored, policy, delivery, address or "", now)


async def _opted_out(rt: Runtime, stored: Stored, action: Planned, address: str | None) -> bool:
    if action.kind is Kind.SKIP or action.channel not in (Channel.SMS, Channel.CALL) or not address:
        return False
    return await rt.store.is_opted_out(stored.tenant, address)


async def _after_permanent(rt: Runtime, stored: Stored, delivery: Delivery, address: str, result: SendResult) -> None:
    """What a permanent failure teaches us about the address: an opt-out, or a dead push token."""
    if result.reason is Reason.OPTED_OUT and delivery.channel in (Channel.SMS, Channel.CALL):
        # Twilio's STOP list is per sender and channel: a WhatsApp opt-out says nothing of texts and calls.
        await rt.store.opt_out(stored.tenant, address, True)
    elif result.reason is Reason.TOKEN_INVALID and delivery.channel is Channel.PUSH:
        who = person(stored.intent, delivery.target)
        if who is not None and address in who.push_tokens:
            who.push_tokens.remove(address)
            await rt.store.replace_intent(
                stored.id, delivery.claim, stored.intent.model_dump_json(exclude_defaults=True)
            )


async def _retry_pending(rt: Runtime, stored: Stored, policy: Policy, token: int, now: datetime) -> None:
    """Pending attempts: retries that fell due, and ones a crashed worker claimed but never finished."""
    for delivery in list(stored.deliveries.values()):
        if delivery.status is not DeliveryStatus.PENDING or (delivery.retry_at and delivery.retry_at > now):
            continue
        resumed = delivery.model_copy(update={"claim": token, "retry_at": None})
        if not await rt.store.claim(stored.id, token, resumed):
            raise Fenced
        stored.deliveries[resumed.key] = resumed
        address = address_for(policy, stored.intent, resumed.target, resumed.channel) or ""
        await _send(rt, stored, policy, resumed, address, now)


async def _send(rt: Runtime, stored: Stored, policy: Policy, delivery: Delivery, address: str, now: datetime) -> None:
    try:
        rendered = rt.renderer.render(
            delivery.template, delivery.channel, stored.intent, person(stored.intent, delivery.target)
        )
    except RenderError as exc:
        result = SendResult(Outcome.PERMANENT, detail=f"template: {exc}")
    else:
        if rendered.sms is not None:
            delivery = delivery.model_copy(
                update={"encoding": rendered.sms.encoding, "segments": rendered.sms.segments}
            )
        message = Message(
            tenant=stored.tenant, notification_id=stored.id, attempt_key=delivery.key, fence=delivery.claim,
            channel=delivery.channel, address=address, template=delivery.template, locale=rendered.locale,
            parts=rendered.parts, deadline=rt.deadline,
        )  # fmt: skip
        result = await rt.channels[delivery.channel].send(message)
    if result.outcome is Outcome.CANCELLED:
        await _fenced_out(rt, stored.id, delivery, result, now)
    if result.outcome is Outcome.PERMANENT:
        await _after_permanent(rt, stored, delivery, address, result)
    updated, note = _apply(rt, delivery, result, now)
    stored.deliveries[updated.key] = updated
    await rt.store.record(stored.id, updated, note)
    rt.tally[metrics.send_field(delivery.channel, result.outcome)] += 1


async def _fenced_out(rt: Runtime, nid: str, delivery: Delivery, result: SendResult, now: datetime) -> None:
    """Not handed over: under our fence, or with our lease ending. If the notification stopped, the
    attempt is over; otherwise it stays pending for the next lease to perform."""
    current = await rt.store.load(nid)
    if current is not None and current.status is NotificationStatus.STOPPED:
        update = {
            "status": DeliveryStatus.SKIPPED,
            "reason": AttemptReason.STOPPED,
            "error": result.detail,
            "updated_at": now,
        }
        await rt.store.record(nid, delivery.model_copy(update=update))
    else:
        log.info("notification %s: %s %s given back (%s)", nid, delivery.channel, delivery.key, result.detail)
    raise Fenced


def _apply(
    rt: Runtime, delivery: Delivery, result: SendResult, now: datetime
) -> tuple[Delivery, dict[str, str] | None]:
    """The delivery after a send result, and a timeline note when something noteworthy happened."""
    tries = delivery.tries + 1
    base = {"tries": tries, "updated_at": now, "provider_id": result.provider_id or delivery.provider_id}
    if result.outcome is Outcome.ACCEPTED:
        return delivery.model_copy(update={**base, "status": DeliveryStatus.SENT}), None
    if result.outcome is Outcome.DELIVERED:
        return delivery.model_copy(update={**base, "status": DeliveryStatus.DELIVERED}), None
    if result.outcome is Outcome.TRANSIENT and tries < rt.retry.tries:
        retry_at = now + rt.retry.delay(tries, result.retry_after, rt.rnd)
        note = log_entry(
            now,
            f"{delivery.channel} failed transiently ({result.detail}); retry at {retry_at.isoformat()}",
            attempt=delivery.key,
        )
        return delivery.model_copy(update={**base, "retry_at": retry_at, "error": result.detail}), note
    detail = result.detail if result.outcome is Outcome.PERMANENT else f"gave up after {tries} tries: {result.detail}"
    note = log_entry(now, f"{delivery.channel} failed: {detail}", attempt=delivery.key)
    return delivery.model_copy(update={**base, "status": DeliveryStatus.FAILED, "error": detail}), note
