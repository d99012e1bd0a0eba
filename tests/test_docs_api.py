"""The request/response examples of docs/api.md, replayed against the real app and a real Redis.

The page is cut into scenarios by `<!-- api-test: scenario NAME -->` comments (naming an earlier
scenario again continues it, so a story can pause for another section); each scenario is a
test with a fresh Redis, the shipped config.yaml (tenants acme, globex and the admin tenant ops
added, keys as in tests/fixtures.py) and a clock that starts at 2026-11-23T10:00:00Z. In order:

    ```http                         a request: `METHOD PATH`, headers, a blank line, the body.
                                    `n_…` stands for the id of the last notification created.
    ```http                         its response: `HTTP/1.1 STATUS REASON`, headers, a blank line,
                                    the body. The status must be equal, each header shown must be
                                    equal (Content-Length excepted), and the body must match:
                                    JSON with the same keys and values, where a text with `…`
                                    matches any text in place of the `…` and `"…"` alone any value,
                                    and list items with the same `at` may come in any order;
                                    other bodies: each line shown must occur, in this order.
    <!-- api-test: work -->         a worker runs every step due now
    <!-- api-test: after 15m -->    the clock moves on, then a worker runs what fell due
    <!-- api-test: edit "A" "B" --> replace text A by B in config.yaml (to show a failed reload)
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.config import load_settings
from gateway.embedded import EmbeddedRedis
from rules.durations import parse_duration
from tests.fixtures import KEYS, Clock, Harness

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "api.md"
ANY = "…"
DIRECTIVE = re.compile(r"^<!-- api-test: (.+?) -->$")


@dataclass
class Exchange:
    line: int
    request: str
    response: str = ""


@dataclass
class Scenario:
    name: str
    line: int
    steps: list[Exchange | str] = field(default_factory=list)  # an exchange or a directive


def parse_page(page: Path) -> list[Scenario]:
    scenarios: list[Scenario] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = DIRECTIVE.match(line.strip())
        if directive:
            words = directive[1]
            if words.startswith("scenario "):
                name = words.removeprefix("scenario ").strip()
                resumed = [s for s in scenarios if s.name == name]  # a scenario may go on further down
                scenarios.append(resumed[0] if resumed else Scenario(name, index + 1))
                if resumed:
                    scenarios.remove(resumed[0])
            else:
                assert scenarios, f"api.md:{index + 1}: a directive before the first scenario"
                scenarios[-1].steps.append(words)
        elif line.strip() == "```http":
            start = index + 1
            body: list[str] = []
            index += 1
            while lines[index].rstrip() != "```":
                body.append(lines[index])
                index += 1
            text = "\n".join(body)
            assert scenarios, f"api.md:{start}: an http block before the first scenario"
            steps = scenarios[-1].steps
            if text.startswith("HTTP/"):
                assert steps and isinstance(steps[-1], Exchange) and not steps[-1].response, (
                    f"api.md:{start}: a response without its request"
                )
                steps[-1].response = text
            else:
                steps.append(Exchange(start, text))
        index += 1
    for scenario in scenarios:
        for step in scenario.steps:
            assert not isinstance(step, Exchange) or step.response, f"api.md:{step.line}: a request without a response"
    return scenarios


def split_message(text: str) -> tuple[str, dict[str, str], str]:
    head, _, body = text.partition("\n\n")
    first, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first.strip(), headers, body.strip()


def matches(expected: Any, actual: Any, where: str = "body") -> list[str]:
    """Differences between a documented value and the real one (empty when they match)."""
    if expected == ANY:
        return []
    if isinstance(expected, str) and ANY in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split(ANY))
        ok = isinstance(actual, str) and re.fullmatch(pattern, actual, re.DOTALL) is not None
        return [] if ok else [f"{where}: {actual!r} does not match {expected!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = [f"{where}: key {k!r} is not documented" for k in actual if k not in expected]
        problems += [f"{where}: documented key {k!r} is missing" for k in expected if k not in actual]
        for key in expected.keys() & actual.keys():
            problems += matches(expected[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {len(expected)} items, got {actual!r}"]
        in_order = [
            p for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for p in matches(e, a, f"{where}[{i}]")
        ]
        return in_order if in_order and not same_time_shuffle(expected, actual) else []
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    return []


def same_time_shuffle(expected: list[Any], actual: list[Any]) -> bool:
    """True when the items match once entries with the same `at` may come in any order among
    themselves (the API defines no order between things that happened at the same instant)."""
    if not all(isinstance(item, dict) and "at" in item for item in [*expected, *actual]):
        return False
    if [e["at"] for e in expected] != [a["at"] for a in actual]:
        return False
    unmatched = list(range(len(actual)))
    for e in expected:
        found = next((i for i in unmatched if actual[i]["at"] == e["at"] and not matches(e, actual[i])), None)
        if found is None:
            return False
        unmatched.remove(found)
    return True


def lines_in_order(expected: str, actual: str) -> list[str]:
    remaining = actual.splitlines()
    for line in expected.splitlines():
        found = next((i for i, a in enumerate(remaining) if not matches(line, a)), None)
        if found is None:
            return [f"line {line!r} not found (in this order) in:\n{actual}"]
        remaining = remaining[found + 1 :]
    return []


@pytest.fixture
def docs_harness(tmp_path: Path, redis_server: EmbeddedRedis, redis_client: redis.Redis) -> Iterator[Harness]:
    """The harness on the shipped config.yaml, its line numbers kept (tenants are appended)."""
    (tmp_path / "templates").symlink_to(REPO / "templates", target_is_directory=True)
    tenants = "".join(
        f"  {name}:\n    keys: [{{env: {name.upper()}_KEY}}]\n" + ("    admin: true\n" if name == "ops" else "")
        for name in KEYS
    )
    config = (REPO / "config.yaml").read_text(encoding="utf-8").rstrip("\n")
    path = tmp_path / "config.yaml"
    path.write_text(f"{config}\n\nworker: {{lease: 2s}}\ntenants:\n{tenants}", encoding="utf-8")
    env = {f"{name.upper()}_KEY": key for name, key in KEYS.items()} | {"REDIS_URL": redis_server.url}
    harness = Harness(load_settings(path, env=env), redis_client, Clock())
    yield harness
    harness.close()


SCENARIOS = parse_page(PAGE)


def test_the_page_has_scenarios() -> None:
    assert len(SCENARIOS) >= 5
    assert all(any(isinstance(s, Exchange) for s in scenario.steps) for scenario in SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_api_examples(scenario: Scenario, docs_harness: Harness) -> None:
    harness = docs_harness
    last_id: str | None = None
    for step in scenario.steps:
        if isinstance(step, str):
            verb, _, rest = step.partition(" ")
            if verb == "work":
                harness.work()
            elif verb == "after":
                harness.at(parse_duration(rest))
            elif verb == "edit":
                old, new = shlex.split(rest)
                text = harness.settings.path.read_text(encoding="utf-8")
                assert old in text, f"{scenario.name}: config.yaml has no {old!r}"
                harness.settings.path.write_text(text.replace(old, new, 1), encoding="utf-8")
            else:
                pytest.fail(f"{scenario.name}: unknown directive {step!r}")
            continue
        request_line, headers, body = split_message(step.request)
        method, path = request_line.split()[:2]
        if last_id is not None:
            path, body = path.replace("n_" + ANY, last_id), body.replace("n_" + ANY, last_id)
        response = harness.api.request(method, path, headers=headers, content=body.encode() if body else None)
        status_line, expected_headers, expected_body = split_message(step.response)
        where = f"api.md:{step.line} {request_line}"
        assert response.status_code == int(status_line.split()[1]), f"{where}: {response.status_code} {response.text}"
        for name, value in expected_headers.items():
            if name != "content-length":
                assert not matches(value, response.headers.get(name)), f"{where}: header {name}: {response.headers}"
        if response.headers.get("content-type", "").startswith("application/json"):
            actual = response.json()
            problems = matches(json.loads(expected_body), actual)
            if method == "POST" and path == "/v1/notifications" and response.status_code in (200, 202):
                last_id = actual["id"]
        else:
            problems = lines_in_order(expected_body, response.text)
        assert not problems, f"{where}:\n" + "\n".join(problems) + f"\nactual:\n{response.text}"
