"""Issue 15: one tenant must never reach another tenant's masked numbers, sessions or participants.

Every test drives the real API and real signed Twilio webhooks against a real Valkey.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from redis.asyncio import Redis

from gateway.config import Settings, load_settings
from masking import keys
from masking.store import MaskingStore
from rules.problems import RulesError
from tests.fixtures import NUMBERS, PROXIES, Clock, Harness, write_config
from tests.masking.helpers import A, B, open_session, signed, twiml

SELLER = "+14155550123"  # acme's recipient, who answers acme's texts on acme's number
ATTACKER = "+14155550666"
AGENT = "+14155550888"
G_BUYER = {"id": "g-buyer", "phone": "+14155550301"}
G_SELLER = {"id": "g-seller", "phone": "+14155550302"}
SENDERS = {"sms": "+14155550170", "sms_acme": "+14155550171", "voice": "+14155550172"}


def _pool(harness: Harness, tenant: str) -> set[str]:
    return {n["number"] for n in harness.call("GET", "/v1/masking/numbers", tenant).json()["numbers"]}


def _add(harness: Harness, tenant: str, *numbers: str) -> Any:
    return harness.call("POST", "/v1/masking/numbers", tenant, json={"numbers": list(numbers)})


def _refused(response: Any, numbers: list[str]) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["error"], body["numbers"]) == ("number_taken", numbers)
    assert body["message"] and "acme" not in response.text  # who holds a number is not told


# -- 1. a number serves one tenant ------------------------------------------------------------


def test_another_tenants_reply_number_cannot_become_a_proxy_and_its_replies_stay_with_it(harness: Harness) -> None:
    nid = harness.notify()  # acme texts SELLER from acme's number; SELLER's reply must reach acme
    _refused(_add(harness, "globex", NUMBERS["acme"]), [NUMBERS["acme"]])
    opened = harness.call("POST", "/v1/masked-sessions", "globex", json={"participants": [
        {"id": "victim", "phone": SELLER}, {"id": "attacker", "phone": ATTACKER}]})  # fmt: skip
    assert NUMBERS["acme"] not in opened.text
    reply = {"MessageSid": "SM1", "From": SELLER, "To": NUMBERS["acme"], "Body": "my address is 1 Main St"}
    assert signed(harness, "/webhooks/twilio/sms", reply).status_code == 200
    assert [m for m in harness.outbox("globex") if m["address"] == ATTACKER] == []
    assert harness.show(nid)["status"] == "stopped"  # acme got its reply


def test_numbers_held_elsewhere_are_refused_and_nothing_is_added(harness: Harness) -> None:
    for number in (NUMBERS["acme"], NUMBERS["globex"], PROXIES["acme"][0]):
        _refused(_add(harness, "globex", number), [number])
    _refused(_add(harness, "globex", "+14155550161", NUMBERS["acme"]), [NUMBERS["acme"]])
    assert _pool(harness, "globex") == set(PROXIES["globex"])  # all or nothing: the free one was not added
    assert _pool(harness, "acme") == set(PROXIES["acme"])


def test_a_configured_proxy_number_is_reserved_before_the_pool_is_loaded_and_after_removal(harness: Harness) -> None:
    harness.redis.delete(keys.MASK_NUMBERS, keys.mask_pool("acme"))  # as if acme's pool were not loaded yet
    _refused(_add(harness, "globex", PROXIES["acme"][0]), [PROXIES["acme"][0]])
    assert _add(harness, "acme", PROXIES["acme"][0]).status_code == 200
    assert harness.call("DELETE", f"/v1/masking/numbers/{PROXIES['acme'][0]}").status_code == 204
    _refused(_add(harness, "globex", PROXIES["acme"][0]), [PROXIES["acme"][0]])
    assert harness.redis.hget(keys.MASK_NUMBERS, PROXIES["acme"][0]) is None


@pytest.fixture
def with_providers(
    settings: Settings, tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    extra = (f"providers:\n  sms: {{timeout: 1, default: {{from_number: '{SENDERS['sms']}'}},"
             f" tenants: {{acme: {{from_number: '{SENDERS['sms_acme']}'}}}}}}\n"
             f"  voice: {{timeout: 1, inline_twiml: true, default: {{from_number: '{SENDERS['voice']}'}}}}")  # fmt: skip
    h = Harness(load_settings(write_config(tmp_path, extra=extra)), redis_client, Clock())
    yield h
    h.close()


def test_a_providers_sender_number_cannot_become_a_proxy(with_providers: Harness) -> None:
    for tenant in ("globex", "acme"):
        for number in SENDERS.values():
            _refused(_add(with_providers, tenant, number), [number])
    assert _pool(with_providers, "globex") == set(PROXIES["globex"])


def test_two_tenants_adding_the_same_numbers_at_once_get_each_number_once(harness: Harness) -> None:
    numbers = [f"+1415555040{i}" for i in range(10)]

    async def race() -> list[list[str]]:
        client = Redis.from_url(str(harness.settings.redis_url), decode_responses=True)
        store = MaskingStore(client, timedelta(days=1))
        try:
            adds = [store.add_numbers(t, [n]) for n in numbers for t in ("acme", "globex", "acme", "globex")]
            return list(await asyncio.gather(*adds))
        finally:
            await client.aclose()

    results = asyncio.run(race())
    acme, globex = _pool(harness, "acme"), _pool(harness, "globex")
    assert not acme & globex
    assert set(numbers) <= acme | globex
    assert sum(r == [] for r in results) == 2 * len(numbers)  # per number: its winner, and the winner again


def _config_problems(tmp_path: Path, tenants: str) -> list[Any]:
    path = tmp_path / "config.yaml"
    path.write_text("tenants:\n" + tenants + "rules: {version: 1, policies: []}\n")
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={})
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("acme", "globex", "where"),
    [
        ("proxy_numbers", "proxy_numbers", "tenants.globex.proxy_numbers[0]"),
        ("numbers", "proxy_numbers", "tenants.globex.proxy_numbers[0]"),
        ("proxy_numbers", "numbers", "tenants.globex.numbers[0]"),
    ],
)
def test_config_refuses_a_number_in_two_tenants_pools_or_replies(
    tmp_path: Path, acme: str, globex: str, where: str
) -> None:
    tenants = f"  acme:\n    {acme}: ['+14155550150']\n  globex:\n    {globex}: ['+14155550150']\n"
    [problem] = _config_problems(tmp_path, tenants)
    assert (problem.line, problem.column, problem.path) == (5, 21 if globex == "proxy_numbers" else 15, where)
    assert "+14155550150" in problem.message and "acme" in problem.message


def test_config_refuses_a_reply_or_sender_number_in_the_same_tenants_pool(tmp_path: Path) -> None:
    providers = "providers:\n  sms: {default: {from_number: '+14155550170'}}\n"
    tenants = "  acme:\n    numbers: ['+14155550100']\n    proxy_numbers: ['+14155550100', '+14155550170']\n"
    path = tmp_path / "config.yaml"
    path.write_text(providers + "tenants:\n" + tenants + "rules: {version: 1, policies: []}\n")
    with pytest.raises(RulesError) as caught:
        load_settings(path, env={})
    reply, sender = caught.value.problems
    assert (reply.line, reply.path) == (
        6,
        "tenants.acme.proxy_numbers[0]",
    ) and "numbers of tenant 'acme'" in reply.message
    assert (sender.line, sender.path) == (6, "tenants.acme.proxy_numbers[1]") and "sender number" in sender.message


# -- 2. agent calls: the call's context stays on the server -------------------------------------


def _answer(harness: Harness, tenant: str) -> tuple[str, ET.Element]:
    """The agent picks up: Twilio fetches the URL the call was placed with (from the outbox)."""
    ring = harness.outbox(tenant)[0]
    url = ring["content"]["url"].removeprefix("http://testserver")
    response = signed(harness, url, {"CallSid": "CA9", "From": ring["from"], "To": ring["address"]})
    return url, twiml(response)


def _dialled(xml: ET.Element) -> tuple[str | None, str | None]:
    dial = xml.find("Dial")
    number = dial.find("Number") if dial is not None else None
    return (number.text if number is not None else None), (dial.get("callerId") if dial is not None else None)


def test_an_agent_id_cannot_steer_a_call_to_another_tenants_participant(harness: Harness) -> None:
    victim = open_session(harness).json()
    mine = open_session(harness, G_BUYER, G_SELLER, tenant="globex").json()
    agent = {"id": f"x&session={victim['id']}&participant=seller-42", "phone": AGENT}
    placed = harness.call("POST", "/v1/calls", "globex",
                          json={"agent": agent, "session_id": mine["id"], "participant_id": "g-seller"})  # fmt: skip
    assert placed.status_code == 201, placed.text
    url, xml = _answer(harness, "globex")
    assert B["phone"] not in ET.tostring(xml, encoding="unicode")
    assert _dialled(xml) == (G_SELLER["phone"], PROXIES["globex"][0])
    assert harness.call("GET", f"/v1/masked-sessions/{victim['id']}").json()["interactions"] == []
    assert set(parse_qs(urlsplit(url).query)) == {"call"} and victim["id"] not in url  # only an opaque id


def test_a_stored_call_context_naming_another_tenants_session_connects_nobody(harness: Harness) -> None:
    victim = open_session(harness).json()

    async def forge() -> str:
        client = Redis.from_url(str(harness.settings.redis_url), decode_responses=True)
        try:
            return await MaskingStore(client, timedelta(days=1)).remember_agent_call(
                "globex", victim["id"], "seller-42", "x"
            )
        finally:
            await client.aclose()

    call_id = asyncio.run(forge())
    xml = twiml(signed(harness, f"/webhooks/twilio/voice/agent?call={call_id}", {"CallSid": "CA9"}))
    assert xml.find("Dial") is None and xml.find("Hangup") is not None
    assert harness.call("GET", f"/v1/masked-sessions/{victim['id']}").json()["interactions"] == []


def test_ids_with_url_characters_still_reach_the_right_participant(harness: Harness) -> None:
    odd = {**B, "id": "seller #4 & co?x=1"}
    session = open_session(harness, A, odd).json()
    proxy = next(p["proxy"] for p in session["participants"] if p["id"] == odd["id"])
    agent = {"id": "agent &=#? 3", "phone": AGENT}
    placed = harness.call(
        "POST", "/v1/calls", json={"agent": agent, "session_id": session["id"], "participant_id": odd["id"]}
    )
    assert placed.status_code == 201, placed.text
    _, xml = _answer(harness, "acme")
    assert _dialled(xml) == (B["phone"], proxy)
    [logged] = harness.call("GET", f"/v1/masked-sessions/{session['id']}").json()["interactions"]
    assert (logged["kind"], logged["direction"]) == ("agent_call", "agent:agent &=#? 3 -> seller #4 & co?x=1")
