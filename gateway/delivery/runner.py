"""Running one due notification: plan with the engine, perform, record, schedule the next look.

Order matters for crash safety: an attempt is claimed (recorded as pending,
under the fence) before it is performed and its outcome recorded after; the
next look is scheduled last. A crash anywhere leaves the lease to expire and
the next worker resumes: recorded outcomes are not repeated. An attempt claimed
and never recorded may have reached its provider: it becomes `unknown`, a try of
its own in the delivery's history, and is performed again with the same attempt
key (the outbox accepts a key once; an email keeps its Message-ID). A Redis
outage after the provider answered does not cause that: the answer is kept in
memory and recorded once Redis is back, while the lease lasts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import redis

from channels.addresses import mask
from channels.base import Message, Outcome, Reason, SendResult
from channels.registry import Registry
from channels.rendering.render import Renderer, RenderError
from gateway import metrics
from gateway.state.due import Leased
from gateway.state.records import Delivery, Stored, Try, TryOutcome, log_entry
from gateway.state.store import Store
from rules.engine import AttemptReason, Kind, Plan, Planned, address_for, person, plan
from rules.model import Channel, Policy
from rules.status import IN_FLIGHT, DeliveryStatus, NotificationStatus

log = logging.getLogger("parley.worker")
MAX_ROUNDS = 50  # plan -> perform rounds per look; fallback chains are short
# Pauses between tries of a Redis write that failed (a restart, a failover), while the lease allows:
# instead of waiting for the lease to run out (a minute), and, for an attempt's outcome, instead of
# leaving it unrecorded so that the next lease sends it again.
STORE_RETRY_PAUSES_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
STORE_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)


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
    retries = [d.retry_at for d in stored.deliveries.values() if d.status in IN_FLIGHT and d.retry_at]
    wakes = [w for w in (result.wake_at, *retries) if w is not None]
    await rt.store.advance(stored, leased.token, next_due=min(wakes) if wakes else None, now=now)


async def _play(rt: Runtime, stored: Stored, policy: Policy, token: int, now: datetime) -> Plan:
    for _ in range(MAX_ROUNDS):
        result = plan(policy, stored.intent, stored.state(), now)
        if result.final is not None or not result.actions:
            return result
        rt.tally[metrics.STEPS] += 1
        await _together([_start(rt, stored, policy, token, action, now) for action in result.actions])
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
    """Pending attempts: retries that fell due, and ones a crashed worker claimed but never finished.
    Each is claimed again, then they are sent together, as a step's sends are (_together)."""
    due = [d for d in stored.deliveries.values() if d.status in IN_FLIGHT and not (d.retry_at and d.retry_at > now)]
    resumed = [await _reclaim(rt, stored, token, delivery, now) for delivery in due]
    await _together(
        [
            _send(rt, stored, policy, d, address_for(policy, stored.intent, d.target, d.channel) or "", now)
            for d in resumed
        ]
    )


async def _reclaim(rt: Runtime, stored: Stored, token: int, delivery: Delivery, now: datetime) -> Delivery:
    resumed = delivery.model_copy(update={"claim": token, "retry_at": None, "updated_at": now})
    interrupted = delivery.retry_at is None  # claimed, then nothing recorded: the provider may have it
    if interrupted:
        resumed = _interrupted(rt, delivery, resumed)
    if not await rt.store.claim(stored.id, token, resumed):
        raise Fenced
    if interrupted:
        note = (
            f"{delivery.channel}: the worker was interrupted before recording the provider's answer; "
            f"the attempt goes again as try {resumed.tries + 1}, which the recipient may get twice"
        )
        await rt.store.note(stored.id, log_entry(now, note, attempt=delivery.key))
    stored.deliveries[resumed.key] = resumed
    return resumed


async def _together(sends: list[Coroutine[Any, Any, None]]) -> None:
    """Run sends at once (push does not wait for the SMTP server's answer to the email); the first error
    (Fenced, a Redis outage) is raised once every one of them has ended."""
    if len(sends) <= 1:  # most steps: no task for gather to make
        for send in sends:
            await send
        return
    done = await asyncio.gather(*sends, return_exceptions=True)
    failed = next((x for x in done if isinstance(x, BaseException)), None)
    if failed is not None:
        raise failed


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
            still_ours=functools.partial(rt.store.hand_over, stored.id, delivery.claim, delivery.key),
        )  # fmt: skip
        result = await rt.channels[delivery.channel].send(message)
        now = rt.clock()  # the try's time is its answer's, not the batch's start: a send may wait for a session
    if result.outcome is Outcome.CANCELLED:
        await _fenced_out(rt, stored.id, delivery, result, now)
    if result.outcome is Outcome.PERMANENT:
        await _after_permanent(rt, stored, delivery, address, result)
    updated, note = _apply(rt, delivery, result, now)
    stored.deliveries[updated.key] = updated
    await _durably(rt, lambda: rt.store.record(stored.id, updated, note))
    rt.tally[metrics.send_field(delivery.channel, result.outcome)] += 1


def _interrupted(rt: Runtime, before: Delivery, resumed: Delivery) -> Delivery:
    """An attempt found claimed and unrecorded: its try is `unknown`, and it goes again as the next try."""
    rt.tally[metrics.send_field(before.channel, TryOutcome.UNKNOWN)] += 1
    gone = Try.of(before.updated_at, TryOutcome.UNKNOWN, "interrupted before the answer was recorded")
    return resumed.model_copy(
        update={"status": DeliveryStatus.UNKNOWN, "tries": before.tries + 1, "history": [*before.history, gone]}
    )


def may_wait(rt: Runtime, pause: float) -> bool:
    """Whether trying a Redis write again after `pause` still fits in the running job's lease (with a
    second to spare); a try that could outlast it is left to the next lease."""
    return rt.deadline is None or time.monotonic() + pause + 1.0 < rt.deadline


async def _durably(rt: Runtime, write: Callable[[], Awaitable[Any]]) -> Any:
    """A write of what a provider answered, tried again through a Redis outage while the lease allows:
    given up, the attempt would look interrupted to the next lease and be sent again."""
    for pause in (*STORE_RETRY_PAUSES_S, None):
        try:
            return await write()
        except STORE_ERRORS as exc:
            if pause is None or not may_wait(rt, pause):
                raise
            log.warning("recording a send: Redis unavailable (%s); trying again in %.2f s", exc, pause)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


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
    else:  # recorded as due again now, so the next lease does not take it for an interrupted send
        log.info("notification %s: %s %s given back (%s)", nid, delivery.channel, delivery.key, result.detail)
        await rt.store.record(nid, delivery.model_copy(update={"retry_at": now, "error": result.detail}))
    raise Fenced


def _apply(
    rt: Runtime, delivery: Delivery, result: SendResult, now: datetime
) -> tuple[Delivery, dict[str, str] | None]:
    """The delivery after a send result, and a timeline note when something noteworthy happened."""
    tries = delivery.tries + 1
    base = {"tries": tries, "updated_at": now, "provider_id": result.provider_id or delivery.provider_id,
            "history": [*delivery.history, Try.of(now, _TRIED[result.outcome], result.detail)]}  # fmt: skip
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


_TRIED = {
    Outcome.ACCEPTED: TryOutcome.SENT,
    Outcome.DELIVERED: TryOutcome.DELIVERED,
    Outcome.TRANSIENT: TryOutcome.TRANSIENT,
    Outcome.PERMANENT: TryOutcome.PERMANENT,
    Outcome.CANCELLED: TryOutcome.PERMANENT,  # never recorded as a try: _fenced_out ends the run first
}
