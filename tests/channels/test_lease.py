"""No provider call that could outlast the worker's lease, and at most `max_sessions` SMTP
sessions at once: against real SMTP (aiosmtpd), Twilio's and FCM's contracts on Prism, and a
worker running a job whose lease is about to end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from rq import SimpleWorker

from channels.base import LEASE_ENDING, Message, Outcome, SendResult
from channels.email.channel import EmailChannel
from channels.fcm.channel import PushChannel, PushSettings
from channels.registry import Registry
from channels.slack.channel import SlackChannel, SlackSettings
from gateway.delivery.worker import Timer, installed, queue_for
from rules.model import Channel
from tests.channels.conftest import PrismFirebaseCredential, PrismHttpClient, make_message
from tests.channels.test_email import PARTS, FreePortController, Mailbox, settings
from tests.channels.test_twilio import send_sms, sms
from tests.contracts import prism
from tests.fixtures import Harness

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")


class CountingMailbox(Mailbox):
    """Counts the messages being transferred at once."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.active = self.most = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.active -= 1


def email(address: str, deadline: float | None = None) -> Message:
    return replace(make_message(Channel.EMAIL, address, PARTS), attempt_key=address, deadline=deadline)


def run_smtp(mailbox: Mailbox, **extra: Any) -> tuple[FreePortController, EmailChannel]:
    controller = FreePortController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    return controller, EmailChannel(settings(controller.port, **extra), {})


def test_a_burst_opens_at_most_max_sessions_smtp_sessions_and_sends_every_message() -> None:
    mailbox = CountingMailbox(delay=0.05)
    controller, channel = run_smtp(mailbox, max_sessions=3)

    async def burst() -> list[SendResult]:
        return await asyncio.gather(*(channel.send(email(f"u{i}@example.org")) for i in range(12)))

    try:
        results = asyncio.run(burst())
    finally:
        controller.stop(no_assert=True)
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 12
    assert len(mailbox.received) == 12
    assert mailbox.most == 3


def test_no_session_starts_that_the_lease_could_end_during() -> None:
    mailbox = Mailbox()
    controller, channel = run_smtp(mailbox, timeout=5)
    try:
        late = asyncio.run(channel.send(email("late@example.org", time.monotonic() + 4)))
        in_time = asyncio.run(channel.send(email("soon@example.org", time.monotonic() + 30)))
    finally:
        controller.stop(no_assert=True)
    assert late == LEASE_ENDING
    assert in_time.outcome is Outcome.ACCEPTED
    assert [m["To"] for m in mailbox.received] == ["soon@example.org"]


def test_the_lease_is_asked_after_waiting_for_a_session() -> None:
    # One session at a time, each 1 s: the second message gets its session 1 s later, when a 2 s
    # timeout no longer fits in the 2.6 s that were left when both were handed over. The first has
    # 0.6 s to open its session (0.2 s was too little on a loaded machine).
    mailbox = Mailbox(delay=1.0)
    controller, channel = run_smtp(mailbox, max_sessions=1, timeout=2)

    async def both() -> tuple[SendResult, SendResult]:
        deadline = time.monotonic() + 2.6
        return await asyncio.gather(
            channel.send(email("a@example.org", deadline)), channel.send(email("b@example.org", deadline))
        )

    try:
        first, second = asyncio.run(both())
    finally:
        controller.stop(no_assert=True)
    assert first.outcome is Outcome.ACCEPTED and second == LEASE_ENDING
    assert [m["To"] for m in mailbox.received] == ["a@example.org"]


def test_twilio_is_not_called_when_the_lease_could_end_during_the_call(twilio_http: PrismHttpClient) -> None:
    channel = sms(twilio_http)  # Twilio's timeout: 15 s
    message = make_message(Channel.SMS, "+4915112345678", {"body": "You have a new inquiry"})
    assert asyncio.run(channel.send(replace(message, deadline=time.monotonic() + 10))) == LEASE_ENDING
    assert twilio_http.sent == []
    assert asyncio.run(channel.send(replace(message, deadline=time.monotonic() + 60))).outcome is Outcome.ACCEPTED
    assert send_sms(channel).outcome is Outcome.ACCEPTED  # no lease: no bound
    assert len(twilio_http.sent) == 2


def test_fcm_is_not_called_when_the_lease_could_end_during_the_call(fcm_credential: PrismFirebaseCredential) -> None:
    settings_ = PushSettings(project_id="demo-project", app_name="parley-test-lease", timeout=20)
    channel = PushChannel(settings_, {}, credential=fcm_credential)
    message = make_message(Channel.PUSH, "fcm-registration-token-123", {"title": "New inquiry", "body": "Hi"})
    assert asyncio.run(channel.send(replace(message, deadline=time.monotonic() + 10))) == LEASE_ENDING
    assert asyncio.run(channel.send(replace(message, deadline=time.monotonic() + 60))).outcome is Outcome.ACCEPTED


def test_slack_is_not_called_when_the_lease_could_end_during_the_call(prisms: dict[str, prism.Prism]) -> None:
    channel = SlackChannel(SlackSettings(base_url=prisms["slack"].url + "/"), {"SLACK_BOT_TOKEN": "xoxb-test"})
    message = make_message(Channel.SLACK, "#marketplace-ops", {"text": "Unanswered inquiry"})
    assert asyncio.run(channel.send(replace(message, deadline=time.monotonic() + 10))) == LEASE_ENDING
    assert asyncio.run(channel.send(replace(message, deadline=time.monotonic() + 60))).outcome is Outcome.DELIVERED


def test_a_job_whose_lease_is_ending_gives_its_sends_back_and_the_next_lease_sends_them_once(
    harness: Harness,
) -> None:
    mailbox = Mailbox()
    controller = FreePortController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    adapters: dict[Channel, Any] = {c: harness.runtime.channels[c] for c in Channel}
    adapters[Channel.EMAIL] = EmailChannel(settings(controller.port, timeout=5), {})
    harness.runtime.channels = Registry(adapters)
    try:
        nid = harness.notify(event="quick.ping")  # email and SMS (the outbox), at once
        short = Timer(harness.redis, queue_for(harness.redis), clock=harness.clock, lease_ms=3000)
        assert short.fire() == 1  # a lease of 3 s: less than the SMTP timeout
        SimpleWorker([queue_for(harness.redis)], connection=harness.redis).work(burst=True, logging_level="WARNING")
        assert installed().settle(10)
        shown = harness.show(nid)
        assert shown["status"] == "active"
        # The email is given back; the SMS, whose outbox has no timeout to fit, went out.
        assert [(d["attempt"], d["status"], d["tries"]) for d in shown["deliveries"]] == [
            ("0.0.email", "pending", 0), ("0.0.sms", "delivered", 1)
        ]  # fmt: skip
        assert mailbox.received == [] and harness.sent(nid) == [("sms", "inquiry-new")]
        assert harness.work() == 0  # still leased
        assert harness.at(timedelta(seconds=4)) == 1  # the lease ended: the next one (60 s) sends
    finally:
        controller.stop(no_assert=True)
    # The first step once: its SMS in the first lease, its email (the given-back attempt, same key) in the
    # next. Later steps of `quick` fell due during those 4 s too.
    assert len([m for m in mailbox.received if m["Message-ID"].endswith(".0.0.email@acme.example>")]) == 1
    assert harness.sent(nid).count(("sms", "inquiry-new")) == 1
    first = {d["attempt"]: d["status"] for d in harness.show(nid)["deliveries"]}
    assert (first["0.0.email"], first["0.0.sms"]) == ("sent", "delivered")  # the outbox delivers at once
