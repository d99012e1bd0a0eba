"""Email, push and Slack end to end through a worker: real SMTP (aiosmtpd), and FCM's and Slack's
contracts on Prism through firebase-admin and slack_sdk."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from channels.email.channel import EmailChannel
from channels.fcm.channel import PushChannel, PushSettings
from channels.registry import Registry
from channels.slack.channel import SlackChannel, SlackSettings
from gateway.state import keys
from gateway.wiring import slack_updater_for
from rules.model import Channel
from tests.channels.conftest import PrismFirebaseCredential
from tests.channels.test_email import FreePortController, Mailbox, settings
from tests.contracts import prism
from tests.fixtures import Harness
from tests.gateway.test_webhooks import ack_payload, slack_post

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")


def use(harness: Harness, channel: Channel, adapter: Any) -> None:
    adapters: dict[Channel, Any] = {c: harness.runtime.channels[c] for c in Channel}
    adapters[channel] = adapter
    harness.runtime.channels = Registry(adapters)


class FlakyMailbox(Mailbox):
    """Answers 451 (try later) to the first `busy` deliveries, then accepts."""

    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.busy > 0:
            self.busy -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)


def start_smtp(mailbox: Mailbox) -> FreePortController:
    controller = FreePortController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    return controller


def test_email_transient_then_delivered_and_permanent_then_fallback(harness: Harness) -> None:
    mailbox = FlakyMailbox(busy=1)
    controller = start_smtp(mailbox)
    try:
        use(harness, Channel.EMAIL, EmailChannel(settings(controller.port), {}))
        nid = harness.notify(event="quick.ping")
        harness.work()
        email = next(d for d in harness.show(nid)["deliveries"] if d["channel"] == "email")
        assert (email["status"], email["tries"]) == ("pending", 1) and "451" in email["error"]
        harness.at(timedelta(seconds=13))  # past the jittered first retry
        email = next(d for d in harness.show(nid)["deliveries"] if d["attempt"] == "0.0.email")
        assert (email["status"], email["tries"]) == ("sent", 2)
        [mail] = mailbox.received[:1]
        assert mail["Message-ID"] == email["provider_id"]
        assert mail["Subject"] == "New question about Red bike"
        unknown = harness.notify(recipient={"id": "s", "email": "unknown@example.org", "phone": "+14155550124"})
        harness.work()
        deliveries = {d["channel"]: d for d in harness.show(unknown)["deliveries"]}
        assert deliveries["email"]["status"] == "failed" and "550" in deliveries["email"]["error"]
        assert deliveries["sms"]["instead_of"] == "push"  # no push token: sms ran as push's fallback
    finally:
        controller.stop(no_assert=True)


def test_push_through_fcm_and_an_unregistered_token_is_dropped_with_fallback(
    harness: Harness, fcm_credential: PrismFirebaseCredential
) -> None:
    push = PushChannel(PushSettings(project_id="demo-project", app_name="parley-e2e"), {}, credential=fcm_credential)
    use(harness, Channel.PUSH, push)
    nid = harness.notify()
    harness.work()
    first = next(d for d in harness.show(nid)["deliveries"] if d["channel"] == "push")
    assert first["status"] == "sent" and first["provider_id"]  # FCM's message name (Prism: its example)
    fcm_credential.google.prefer = "code=404"  # UNREGISTERED
    gone = harness.notify()
    harness.work()
    view = harness.show(gone)
    push_delivery = next(d for d in view["deliveries"] if d["channel"] == "push")
    assert push_delivery["status"] == "failed" and push_delivery["error"].startswith("token_invalid")
    assert next(d for d in view["deliveries"] if d["channel"] == "sms")["instead_of"] == "push"
    intent = json.loads(harness.redis.hget(keys.notification(gone), "intent") or b"{}")
    assert intent["recipient"].get("push_tokens", []) == []  # dropped: later steps will not use it


def test_slack_alert_posted_and_acknowledged_from_its_button(harness: Harness, prisms: dict[str, prism.Prism]) -> None:
    slack = SlackChannel(SlackSettings(base_url=prisms["slack"].url + "/"), {"SLACK_BOT_TOKEN": "xoxb-test"})
    use(harness, Channel.SLACK, slack)
    updates: list[tuple[str, str]] = []
    update = slack_updater_for(harness.runtime.channels)
    assert update is not None

    async def recording(payload: dict[str, Any], who: str, when: Any) -> None:
        updates.append((who, payload["channel"]["id"]))
        await update(payload, who, when)  # chat.update against Slack's contract on Prism

    harness.api.app.state.webhooks.slack_acknowledged = recording
    nid = harness.notify()
    harness.work()
    harness.at(timedelta(minutes=15))
    harness.at(timedelta(hours=1))
    alert = next(d for d in harness.show(nid)["deliveries"] if d["channel"] == "slack")
    assert alert["status"] == "delivered" and ":" in alert["provider_id"]
    assert slack_post(harness, ack_payload(nid)).status_code == 200
    assert updates == [("dana", "C42")]
    assert any(e["what"] == "event:acknowledged" for e in harness.show(nid)["timeline"])  # after its last step
