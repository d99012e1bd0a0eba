"""Number pool and sessions: assignment keeps routing unambiguous, also under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from masking.assign import Exhausted
from masking.model import ParticipantIn
from masking.store import MaskingStore, Opened
from tests.fixtures import PROXIES, Harness
from tests.masking.helpers import A, B, open_session


def test_the_pool_comes_from_config_and_the_api(harness: Harness) -> None:
    numbers = harness.call("GET", "/v1/masking/numbers").json()["numbers"]
    assert {n["number"] for n in numbers} == set(PROXIES["acme"])
    assert {"number": "+4930901820", "country": "DE"} in numbers
    assert harness.call("POST", "/v1/masking/numbers", json={"numbers": ["+14155550152"]}).status_code == 200
    taken = harness.call("POST", "/v1/masking/numbers", json={"numbers": [PROXIES["globex"][0]]})
    assert (taken.status_code, taken.json()["error"]) == (409, "number_taken")
    bad = harness.call("POST", "/v1/masking/numbers", json={"numbers": ["555-0100"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["path"] == "numbers[0]"
    assert harness.call("DELETE", "/v1/masking/numbers/+14155550152").status_code == 204
    assert harness.call("DELETE", "/v1/masking/numbers/+14155550152").status_code == 404


def test_a_session_gives_each_participant_a_proxy_and_never_their_real_numbers(harness: Harness) -> None:
    response = open_session(harness, correlation_key="conversation:9", ttl="2h")
    assert response.status_code == 201
    body = response.json()
    assert A["phone"] not in response.text and B["phone"] not in response.text
    proxies = {p["id"]: p["proxy"] for p in body["participants"]}
    assert proxies["seller-42"] == "+4930901820"  # a German number for the German participant
    assert proxies["buyer-7"].startswith("+1415")
    assert body["expires_at"] == "2026-11-23T12:00:00.000Z"
    again = open_session(harness, correlation_key="conversation:9", ttl="2h")
    assert again.status_code == 200 and again.json()["id"] == body["id"]  # idempotent
    other = open_session(harness, correlation_key="conversation:10")
    assert other.json()["id"] != body["id"]
    assert {p["id"]: p["proxy"] for p in other.json()["participants"]}["buyer-7"] != proxies["buyer-7"]


def test_pool_exhaustion_says_how_many_numbers_are_needed(harness: Harness) -> None:
    opened = [open_session(harness, b={"id": f"seller-{i}", "phone": f"+1415555020{i}"}) for i in range(3)]
    assert [r.status_code for r in opened] == [201, 201, 201]
    response = open_session(harness, b={"id": "seller-9", "phone": "+14155550209"})
    assert response.status_code == 409
    assert response.json() | {"message": ""} == {"error": "pool_exhausted", "needed": 4, "available": 3, "message": ""}
    sid = harness.call("POST", "/v1/masked-sessions", json={"participants": [A, {"id": "s0", "phone": "+14155550208"}]})
    assert sid.status_code == 409
    closed = harness.call("DELETE", f"/v1/masked-sessions/{opened[0].json()['id']}")
    assert closed.json()["status"] == "closed"
    assert open_session(harness, b={"id": "seller-9", "phone": "+14155550209"}).status_code == 201  # a number was freed


def test_concurrent_sessions_for_one_participant_never_share_a_number(harness: Harness) -> None:
    assert harness.settings.redis_url
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)

    async def race() -> list[Opened | Exhausted]:
        store = MaskingStore.__new__(MaskingStore)
        from redis.asyncio import Redis

        client = Redis.from_url(str(harness.settings.redis_url), decode_responses=True)
        MaskingStore.__init__(store, client, timedelta(days=1))
        buyer = ParticipantIn(id="buyer", phone="+14155550199")
        tasks = [
            store.open(
                "acme",
                f"ms_{i}",
                [buyer, ParticipantIn(id=f"s{i}", phone=f"+141555503{i:02d}")],
                timedelta(hours=1),
                now,
                None,
                False,
            )
            for i in range(20)
        ]
        tasks += [
            store.open(
                "acme",
                f"ms_same_{i}",
                [buyer, ParticipantIn(id="s99", phone="+14155550399")],
                timedelta(hours=1),
                now,
                "conversation:1",
                False,
            )
            for i in range(5)
        ]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            await client.aclose()

    harness.call("GET", "/v1/masking/numbers")  # the app has loaded the pool
    results = asyncio.run(race())
    opened = [r for r in results if isinstance(r, Opened)]
    buyer_proxies = [p.proxy for r in opened if r.created for p in r.session.participants if p.id == "buyer"]
    assert len(buyer_proxies) == len(set(buyer_proxies)) == 3  # three numbers, each once
    assert sum(isinstance(r, Exhausted) for r in results) >= 20 - 2
    same = {r.session.id for r in opened if any(p.id == "s99" for p in r.session.participants)}
    assert len(same) <= 1  # one session for the same pair and correlation key, however many asked at once
