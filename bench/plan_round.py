"""`python -m bench.plan_round`: the CPU of one planning round in-process (Stored.state and plan), the
engine reading the stored attempt records as they are, against copies of them rebuilt per round (the
code before the architecture issue). No servers; timeit, the two taking turns, best of 7 x 2,000 each."""

from __future__ import annotations

import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.rulesets import load_rules
from gateway.state.records import Delivery
from rules.engine import Attempt, State, plan
from rules.intent import EXAMPLE, Intent
from rules.status import DeliveryStatus

NUMBER, REPEAT = 2000, 7


def main() -> None:
    rules = load_rules(Path(__file__).parent.parent / "config.yaml")
    intent = Intent.model_validate(EXAMPLE)
    policy = rules.select(intent)
    assert policy is not None
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    first = plan(policy, intent, State(started_at=now), now)
    sent = [
        Delivery.planned(a, now, 1, "masked").model_copy(update={"status": DeliveryStatus.SENT}) for a in first.actions
    ]

    def copies() -> State:  # as the removed Delivery.attempt() built them, with keywords
        return State(now, tuple(Attempt(step=d.step, run=d.run, channel=d.channel, status=d.status, at=d.at,
                                        updated_at=d.updated_at, primary=d.primary, reason=d.reason) for d in sent))  # fmt: skip

    def records() -> State:
        return State(now, tuple(sent))

    later = now + timedelta(minutes=20)
    print(f"policy {policy.name}, {len(sent)} attempts recorded")
    best = {"records as they are": 1e9, "copies per round": 1e9}
    for _ in range(REPEAT):  # taking turns, so a slower moment of the machine hits both
        for name, state in (("records as they are", records), ("copies per round", copies)):
            took = timeit.timeit(lambda s=state: plan(policy, intent, s(), later), number=NUMBER)  # type: ignore[misc]
            best[name] = min(best[name], took)
    for name, took in best.items():
        print(f"{name:>20}: {took / NUMBER * 1e6:.1f} µs per round")


if __name__ == "__main__":
    main()
