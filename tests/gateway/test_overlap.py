"""A worker keeps many sends in flight: it takes the next job while earlier sends wait on a slow provider,
a slow provider holds up neither the other channels of the same step nor more than its own bound, and a
worker runs at most `worker.in_flight` notifications at once (issue 18).

The slow provider is a real SMTP server (aiosmtpd) that keeps every message and answers only when the
test lets it, so nothing here depends on timing: what is in flight is seen at the server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from channels.email.channel import EmailChannel
from gateway.delivery import worker
from rules.model import Channel
from tests.channels.test_email import FreePortController, Mailbox, settings
from tests.channels.test_end_to_end_more import start_smtp, use
from tests.fixtures import Harness


class HeldMailbox(Mailbox):
    """Keeps each message as it arrives, and answers 250 only once `gate` is open."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = 0
        self.most_waiting = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.waiting -= 1


@pytest.fixture
def held() -> Iterator[tuple[FreePortController, HeldMailbox]]:
    mailbox = HeldMailbox()
    controller = start_smtp(mailbox)
    yield controller, mailbox
    mailbox.gate.set()
    controller.stop(no_assert=True)


def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def leased_job(harness: Harness, count: int) -> tuple[list[str], list[list[Any]]]:
    ids = [harness.notify(event="quick.ping") for _ in range(count)]  # first step: email and sms (outbox)
    now_ms = int(harness.clock.now.timestamp() * 1000)
    items = [[x.id, x.due_ms, x.token] for x in harness.timer.store.lease(now_ms, 100, 60_000)]
    assert sorted(i[0] for i in items) == sorted(ids)
    return ids, items


def email_of(harness: Harness, nid: str) -> dict[str, Any]:
    return next(d for d in harness.show(nid)["deliveries"] if d["channel"] == "email")


def test_a_worker_takes_the_next_job_while_the_sends_of_the_last_wait_on_the_provider(
    harness: Harness, held: tuple[FreePortController, HeldMailbox]
) -> None:
    controller, mailbox = held
    use(harness, Channel.EMAIL, EmailChannel(settings(controller.port, max_sessions=50, timeout=30), {}))
    first, job = leased_job(harness, 5)
    assert worker.run_batch(job) == 5  # returns with its emails unanswered
    second, job = leased_job(harness, 5)
    assert worker.run_batch(job) == 5
    until(lambda: mailbox.waiting == 10)  # both jobs' emails are at the server at once
    # The same step's SMS did not wait for the SMTP server's answer.
    assert all(("sms", "inquiry-new") in harness.sent(nid) for nid in first + second)
    assert all(email_of(harness, nid)["status"] == "pending" for nid in first + second)
    mailbox.gate.set()
    assert worker.installed().settle(20)
    assert [email_of(harness, nid)["status"] for nid in first + second] == ["sent"] * 10
    assert len(mailbox.received) == 10


def test_a_slow_provider_takes_no_more_than_its_own_bound(
    harness: Harness, held: tuple[FreePortController, HeldMailbox]
) -> None:
    controller, mailbox = held
    use(harness, Channel.EMAIL, EmailChannel(settings(controller.port, max_sessions=3, timeout=30), {}))
    ids, job = leased_job(harness, 8)
    assert worker.run_batch(job) == 8
    until(lambda: mailbox.waiting == 3)
    until(lambda: all(("sms", "inquiry-new") in harness.sent(nid) for nid in ids))  # the outbox is not held up
    assert mailbox.waiting == 3  # the other five wait for a session, not at the server
    mailbox.gate.set()
    assert worker.installed().settle(20)
    assert mailbox.most_waiting == 3 and len(mailbox.received) == 8
    assert all(email_of(harness, nid)["status"] == "sent" for nid in ids)


def test_a_worker_runs_at_most_in_flight_notifications_and_the_job_waits_for_a_slot(
    harness: Harness, held: tuple[FreePortController, HeldMailbox]
) -> None:
    controller, mailbox = held
    use(harness, Channel.EMAIL, EmailChannel(settings(controller.port, max_sessions=50, timeout=30), {}))
    worker.install(harness.runtime, in_flight=4)
    ids, job = leased_job(harness, 6)
    started: list[int] = []
    job_thread = threading.Thread(target=lambda: started.append(worker.run_batch(job)))
    job_thread.start()
    until(lambda: mailbox.waiting == 4)
    assert job_thread.is_alive() and started == []  # two are still waiting for a slot: so is the job
    mailbox.gate.set()
    job_thread.join(20)
    assert started == [6]
    assert worker.installed().settle(20)
    assert all(email_of(harness, nid)["status"] == "sent" for nid in ids)


def test_notifications_whose_lease_ends_before_a_slot_frees_are_left_to_the_next_lease(
    harness: Harness, held: tuple[FreePortController, HeldMailbox]
) -> None:
    controller, mailbox = held
    use(harness, Channel.EMAIL, EmailChannel(settings(controller.port, max_sessions=50, timeout=30), {}))
    worker.install(harness.runtime, in_flight=2)
    busy, job = leased_job(harness, 2)
    assert worker.run_batch(job) == 2
    until(lambda: mailbox.waiting == 2)  # both slots taken, until the server answers
    late, job = leased_job(harness, 3)
    lease_until_ms = int(harness.clock.now.timestamp() * 1000) + 1500  # 0.5 s more than a run needs at least
    assert worker.run_batch(job, lease_until_ms) == 0
    assert all(harness.sent(nid) == [] for nid in late)  # not started: nothing claimed, nothing sent
    mailbox.gate.set()
    assert worker.installed().settle(20)
    assert all(email_of(harness, nid)["status"] == "sent" for nid in busy)


def test_the_first_notifications_of_a_policy_version_started_together_read_it_once(harness: Harness) -> None:
    """A fresh worker's first batch runs hundreds of notifications of one policy version at once: one read
    and one parse of its snapshot serve them all."""
    ids, job = leased_job(harness, 40)
    harness.redis.config_resetstat()
    assert worker.run_batch(job) == 40
    assert worker.installed().settle(20)
    reads = harness.redis.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
    assert reads == 1  # the policy snapshot; everything else a run reads is a hash (HGETALL) or a script
    assert all(("sms", "inquiry-new") in harness.sent(nid) for nid in ids)


def test_a_job_whose_lease_is_all_but_over_starts_nothing_even_with_slots_free(harness: Harness) -> None:
    ids, job = leased_job(harness, 3)
    lease_until_ms = int(harness.clock.now.timestamp() * 1000) + 500  # less than a run needs at least
    assert worker.run_batch(job, lease_until_ms) == 0
    assert worker.installed().settle(10)
    assert all(harness.sent(nid) == [] for nid in ids)  # left to the next lease: nothing claimed or sent
