"""How an attempt is stored: compact, and read back exactly as it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.state.records import Delivery
from rules.engine import AttemptReason, Kind, Planned
from rules.model import Channel
from rules.status import DeliveryStatus

AT = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def delivery(**changes: object) -> Delivery:
    base = Delivery(
        key="2.0.sms", step=2, run=0, kind=Kind.SEND, channel=Channel.SMS, target="recipient",
        template="inquiry-reminder", status=DeliveryStatus.SENT, at=AT, updated_at=AT, claim=3, tries=1,
    )  # fmt: skip
    return base.model_copy(update=changes)


@pytest.mark.parametrize("primary", [True, False])
def test_a_stored_attempt_reads_back_as_it_was(primary: bool) -> None:
    before = delivery(primary=primary, fallback_for=None if primary else Channel.PUSH, target="ops-slack")
    assert Delivery.from_stored("2.0.sms", before.stored()) == before


def test_the_stored_form_leaves_out_what_it_can_rebuild_and_keeps_what_the_scripts_read() -> None:
    stored = json.loads(delivery().stored())
    assert "key" not in stored  # the hash field a:2.0.sms names it
    assert not {"primary", "kind", "target", "error"} & stored.keys()  # at their defaults
    assert stored["claim"] == 3 and stored["status"] == "sent"  # read by the RECORD script
    assert json.loads(delivery(primary=False).stored())["primary"] is False


def test_attempts_stored_with_their_key_by_earlier_versions_still_read() -> None:
    older = delivery().model_dump_json()  # key, primary and every null field included
    assert Delivery.from_stored("2.0.sms", older) == delivery()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"primary": False, "tries": 0, "target": "ops-slack"},
        {"kind": Kind.SKIP, "status": DeliveryStatus.SKIPPED, "reason": AttemptReason.OPTED_OUT, "tries": 0},
        {"error": "timeout", "retry_at": AT, "provider_id": "SM123", "segments": 2, "encoding": "GSM-7"},
    ],
)
def test_an_attempt_is_stored_without_exactly_its_key_and_its_defaults(changes: dict[str, object]) -> None:
    attempt = delivery(**changes)
    assert json.loads(attempt.stored()) == json.loads(attempt.model_dump_json(exclude_defaults=True, exclude={"key"}))


@pytest.mark.parametrize("kind", [Kind.SEND, Kind.SKIP])
def test_an_attempt_planned_from_an_engine_action_is_a_valid_attempt(kind: Kind) -> None:
    """`planned` builds without validation (the hot path); it must equal what validation would build."""
    action = Planned(kind=kind, step=1, run=2, channel=Channel.CALL, target="counterpart", template="call-intro",
                     due=AT, deferred_from=AT, fallback_for=Channel.SMS, bridge="recipient")  # fmt: skip
    built = Delivery.planned(action, AT, 7, "+141*****23")
    validated = Delivery.model_validate(built.model_dump())
    assert built == validated
    assert built.status is (DeliveryStatus.SKIPPED if kind is Kind.SKIP else DeliveryStatus.PENDING)
    assert (built.key, built.claim, built.primary, built.reason, built.at) == ("1.2.call", 7, False, "quiet_hours", AT)
    assert (built.target, built.template, built.fallback_for, built.bridge) == (
        "counterpart", "call-intro", Channel.SMS, "recipient")  # fmt: skip
    assert Delivery.from_stored(built.key, built.stored()) == built
