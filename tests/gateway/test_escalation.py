"""End to end: intent in over HTTP, steps out in the outbox at the right (simulated) times, response stops it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from channels.base import Adapter, Message, SendResult
from channels.registry import Registry
from rules.model import Channel
from tests.fixtures import Harness


def test_escalation_runs_step_by_step_and_a_response_stops_the_rest(harness: Harness) -> None:
    nid = harness.notify()
    assert harness.sent(nid) == []  # the API answers before anything is sent
    harness.work()
    assert harness.sent(nid) == [("push", "inquiry-new"), ("email", "inquiry-new")]

    harness.at(timedelta(minutes=14, seconds=59))
    assert len(harness.sent(nid)) == 2  # not a moment early
    harness.at(timedelta(seconds=1))
    assert harness.sent(nid)[-1] == ("sms", "inquiry-reminder")

    response = harness.call("POST", f"/v1/notifications/{nid}/events", json={"type": "responded"})
    assert response.json() == {"id": nid, "status": "stopped", "result": "stopped"}
    harness.at(timedelta(hours=3))
    assert len(harness.sent(nid)) == 3
    view = harness.show(nid)
    assert view["status"] == "stopped"
    assert view["ended"]["reason"] == "responded"
    assert [d["status"] for d in view["deliveries"]] == ["delivered", "delivered", "delivered"]


def test_unanswered_escalation_completes_with_the_ops_alert(harness: Harness) -> None:
    nid = harness.notify()
    harness.work()
    harness.at(timedelta(minutes=15))
    harness.at(timedelta(hours=1))
    assert harness.sent(nid)[-1] == ("slack", "inquiry-unanswered-ops")
    slack = next(m for m in harness.outbox() if m["channel"] == "slack")
    assert slack["address"] == "#marketplace-ops"
    assert "Red bike" in slack["content"]["text"]
    view = harness.show(nid)
    assert view["status"] == "completed"
    assert view["next_step_at"] is None


def test_quiet_hours_defer_to_the_recipients_morning(harness: Harness) -> None:
    harness.clock.now = harness.clock.now.replace(hour=21, minute=30)  # 22:30 in Berlin
    nid = harness.notify()
    harness.work()
    assert harness.sent(nid) == []
    assert harness.show(nid)["next_step_at"] == "2026-11-24T07:00:00.000Z"  # 08:00 in Berlin
    harness.at(timedelta(hours=9, minutes=29, seconds=59))
    assert harness.sent(nid) == []
    harness.at(timedelta(seconds=1))
    assert len(harness.sent(nid)) == 2


def test_missing_address_falls_back_and_shows_in_the_timeline(harness: Harness) -> None:
    recipient = {"id": "seller-9", "phone": "+14155550123", "email": "s@example.com"}
    nid = harness.notify(recipient=recipient)
    harness.work()
    assert harness.sent(nid) == [("email", "inquiry-new"), ("sms", "inquiry-new")]
    deliveries = harness.show(nid)["deliveries"]
    push = next(d for d in deliveries if d["channel"] == "push")
    assert (push["status"], push["reason"]) == ("skipped", "no_address")
    sms = next(d for d in deliveries if d["channel"] == "sms")
    assert (sms["reason"], sms["instead_of"]) == ("fallback", "push")
    assert sms["address"] == "+141******23"  # masked in the API


def test_template_error_is_a_clear_failed_delivery_and_the_fallback_runs(harness: Harness) -> None:
    nid = harness.notify(data={"message": "no listing here"})
    harness.work()
    deliveries = harness.show(nid)["deliveries"]
    assert all(d["status"] == "failed" for d in deliveries)
    assert "listing" in deliveries[0]["error"]
    assert {d["channel"] for d in deliveries} == {"push", "email", "sms"}  # sms ran as push's fallback


def test_correlation_key_stops_every_active_notification_of_the_tenant(harness: Harness) -> None:
    a = harness.notify(correlation_key="conversation:1")
    b = harness.notify(correlation_key="conversation:1")
    other = harness.notify(correlation_key="conversation:2")
    elsewhere = harness.notify("globex", correlation_key="conversation:1")
    harness.work()
    response = harness.call("POST", "/v1/events", json={"type": "responded", "correlation_key": "conversation:1"})
    assert sorted(response.json()["stopped"]) == sorted([a, b])
    assert 'parley_stops_total{event="responded"} 2.0' in harness.api.get("/metrics").text
    harness.at(timedelta(minutes=15))
    assert harness.show(a)["status"] == "stopped"
    assert harness.show(other)["status"] == "active"
    assert harness.show(elsewhere, "globex")["status"] == "active"
    assert harness.sent(other)[-1] == ("sms", "inquiry-reminder")


def test_an_event_the_policy_does_not_stop_on_is_recorded_and_it_runs_on(harness: Harness) -> None:
    rules_quick = harness.notify(event="quick.ping")  # `quick` stops on responded/acknowledged (defaults)
    harness.work()
    response = harness.call("POST", f"/v1/notifications/{rules_quick}/events", json={"type": "acknowledged"})
    assert response.json()["result"] == "stopped"
    nid = harness.notify()
    response = harness.call("POST", f"/v1/notifications/{nid}/events", json={"type": "cancelled"})
    assert response.json()["status"] == "stopped"
    assert any(e["what"] == "event:cancelled" for e in harness.show(nid)["timeline"])


def test_a_stale_job_does_nothing(harness: Harness) -> None:
    nid = harness.notify(event="quick.ping")
    now_ms = int(harness.clock.now.timestamp() * 1000)
    leased = harness.timer.store.lease(now_ms, 10, 2000)  # a first worker leases it, then stalls
    assert [x.id for x in leased] == [nid]
    harness.clock.advance(timedelta(seconds=3))  # the lease expires, another worker takes over
    assert harness.work() == 1
    sent = harness.sent(nid)
    assert sent == [("email", "inquiry-new"), ("sms", "inquiry-new")]
    from gateway.delivery.worker import installed, run_batch

    run_batch([[leased[0].id, leased[0].due_ms, leased[0].token]])  # the first worker wakes up late
    assert installed().settle(10)
    assert harness.sent(nid) == sent


def test_a_long_wait_keeps_the_notification_reachable_by_correlation_key(harness: Harness) -> None:
    """Retention is 7 days; a 10-day wait must not let the correlation index expire meanwhile."""
    from gateway.state import keys

    nid = harness.notify(event="slow.reminder", correlation_key="conversation:long")
    harness.work()
    ttl = harness.redis.ttl(keys.correlation("acme", "conversation:long"))
    assert ttl > 10 * 86400
    harness.at(timedelta(days=9))
    response = harness.call("POST", "/v1/events", json={"type": "responded", "correlation_key": "conversation:long"})
    assert response.json()["stopped"] == [nid]


class _RespondDuringSend:
    """A channel whose message the recipient answers while it is still on its way to them."""

    def __init__(self, inner: Adapter, respond: Callable[[str], None]) -> None:
        self.inner, self.respond, self.name = inner, respond, inner.name

    async def send(self, message: Message) -> SendResult:
        result = await self.inner.send(message)
        self.respond(message.notification_id)
        return result


def test_a_response_while_a_message_is_on_its_way_keeps_that_message_on_record(harness: Harness) -> None:
    """The stop moves the fence while the worker waits on the provider: the worker still records what it
    handed over (the timeline must not show a delivered message as pending), and sends nothing after."""
    nid = harness.notify(event="quick.ping")  # email and sms at once, then more steps later

    def respond(notification_id: str) -> None:
        answer = harness.call("POST", f"/v1/notifications/{notification_id}/events", json={"type": "responded"})
        assert answer.json()["result"] == "stopped"

    rt = harness.runtime
    rt.channels = Registry({c: _RespondDuringSend(rt.channels[c], respond) if c is Channel.SMS else rt.channels[c]
                            for c in Channel})  # fmt: skip
    harness.work()
    harness.at(timedelta(days=1))
    assert harness.sent(nid) == [("email", "inquiry-new"), ("sms", "inquiry-new")]
    view = harness.show(nid)
    assert view["status"] == "stopped"
    assert {d["channel"]: d["status"] for d in view["deliveries"]} == {"email": "delivered", "sms": "delivered"}
