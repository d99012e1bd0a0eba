"""Bounded YAML and bounded reloads: a document built to exhaust memory or time (an alias bomb, a
huge or deeply nested file) is refused quickly with a problem that names the limit, and a reload
never stops the API from answering or replaces the rules in force with anything unchecked."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway.cli import main
from gateway.config import Settings, load_settings
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state.store import Store
from rules.yamlpos import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, Position, YamlSyntaxError, load_located
from tests.fixtures import KEYS, REPO, RULES, Harness, write_config

# "Billion laughs": nine levels of nine aliases each, 1.4 KB that expand to 9**9 values.
BOMB = "policies:\n" + "".join(
    f"  - &l{level} [{', '.join(['*l' + str(level - 1)] * 9 if level else ['lol'] * 9)}]\n" for level in range(9)
)
BOMB_ALIAS = Position(7, 10)  # the first *l4 in &l5: where the expanded values pass the limit


def rules_check(file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    """`parley rules check FILE` (its main function, in a thread so that a hang fails the test):
    (exit code, stderr, seconds)."""
    exit_code: list[int] = []
    began = time.monotonic()
    args = ["rules", "check", str(file), "--templates", str(REPO / "templates")]
    runner = threading.Thread(target=lambda: exit_code.append(main(args)), daemon=True)
    runner.start()
    runner.join(30)
    assert exit_code, "parley rules check ran for 30 s"
    return exit_code[0], capsys.readouterr().err, time.monotonic() - began


def test_an_alias_bomb_is_refused_at_the_alias_where_it_passes_the_limit() -> None:
    began = time.monotonic()
    with pytest.raises(YamlSyntaxError) as caught:
        load_located(BOMB)
    assert time.monotonic() - began < 2
    assert caught.value.position == BOMB_ALIAS
    assert f"more than {MAX_YAML_VALUES} values once aliases are expanded" in caught.value.message


def test_a_document_over_the_size_limit_is_refused_before_parsing() -> None:
    text = "a: [" + "1, " * (MAX_YAML_BYTES // 3) + "]\n"
    began = time.monotonic()
    with pytest.raises(YamlSyntaxError) as caught:
        load_located(text)
    assert time.monotonic() - began < 0.5
    assert caught.value.position == Position(1, 1)
    assert f"larger than {MAX_YAML_BYTES} bytes" in caught.value.message


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", Position(1, 3 + MAX_YAML_DEPTH)),
        ("\n".join(" " * i + f"k{i}:" for i in range(100)) + " 1\n", Position(MAX_YAML_DEPTH + 1, MAX_YAML_DEPTH + 1)),
    ],
)
def test_nesting_deeper_than_the_limit_is_a_problem_with_a_position(text: str, position: Position) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_located(text)
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in caught.value.message
    assert caught.value.position == position


def test_an_alias_that_nests_a_value_past_the_depth_limit_is_refused() -> None:
    deep = "[" * (MAX_YAML_DEPTH - 2) + "1" + "]" * (MAX_YAML_DEPTH - 2)
    text = f"a: &deep {deep}\nb: [[[[*deep]]]]\n"
    with pytest.raises(YamlSyntaxError) as caught:
        load_located(text)
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in caught.value.message
    assert caught.value.position == Position(2, 8)  # the alias


def test_a_number_too_long_to_read_is_a_problem_not_a_crash() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_located("a: " + "1" * 5000 + "\n")
    assert caught.value.position == Position(1, 4)


def test_documents_within_the_limits_load_as_before() -> None:
    located = load_located(RULES)
    assert [p["name"] for p in located.data["policies"]] == ["inquiry", "quick", "slow", "callme"]
    many = load_located("a: &x [" + ", ".join(["1"] * 1000) + "]\nb: [" + ", ".join(["*x"] * 90) + "]\n")
    assert len(many.data["b"]) == 90


@pytest.mark.parametrize("which", ["bomb", "huge", "config"])
def test_rules_check_refuses_a_hostile_file_quickly_naming_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    file = tmp_path / "rules.yaml"
    if which == "huge":  # 50 MB
        file.write_text(
            "policies:\n" + "  - {name: x, match: {event: e}, steps: [{send: sms, template: t}]}\n" * 750_000
        )
    elif which == "bomb":
        file.write_text(BOMB)
    else:  # config.yaml whose `rules:` names the bomb
        (tmp_path / "bomb.yaml").write_text(BOMB)
        file.write_text("rules: bomb.yaml\n")
    code, stderr, seconds = rules_check(file, capsys)
    assert code == 1
    assert seconds < 5, f"took {seconds:.1f} s"
    if which == "huge":
        assert f"{file}:1:1: (document): invalid YAML: the document is larger than {MAX_YAML_BYTES} bytes" in stderr
    else:
        bomb = file if which == "bomb" else tmp_path / "bomb.yaml"
        line, column = BOMB_ALIAS.line, BOMB_ALIAS.column
        assert f"{bomb}:{line}:{column}: (document): invalid YAML: more than {MAX_YAML_VALUES} values" in stderr
    assert stderr.rstrip().endswith("1 problem; rules not valid")


def test_an_api_reload_of_an_alias_bomb_is_refused_and_the_rules_in_force_stay(harness: Harness) -> None:
    harness.settings.rules_file.write_text(BOMB)
    began = time.monotonic()
    answer: list[httpx.Response] = []
    call = threading.Thread(
        target=lambda: answer.append(harness.call("POST", "/v1/admin/rules/reload", "ops")), daemon=True
    )
    call.start()
    call.join(10)
    assert answer, "the reload did not answer within 10 s"
    assert time.monotonic() - began < 5
    assert answer[0].status_code == 422
    body = answer[0].json()
    assert body["error"] == "rules_invalid"
    assert f"more than {MAX_YAML_VALUES} values once aliases are expanded" in body["messages"][0]
    nid = harness.notify()  # still served by the rules in force
    assert harness.show(nid)["policy"]["name"] == "inquiry"


# -- the reload's time limit and the event loop ------------------------------------------------------


def slow_rules(policies: int) -> str:
    """A valid rules document that takes a while to check: many policies (near the size limit)."""
    policy = """
  - name: p{n}
    match: {{event: "slow{n}.*"}}
    quiet_hours: {{start: "21:00", end: "08:00"}}
    steps:
      - send: [push, email]
        template: inquiry-new
      - wait: 15m
      - send: sms
        template: inquiry-reminder
    fallback: {{push: sms, sms: email}}"""
    return "version: 1\npolicies:" + "".join(policy.format(n=n) for n in range(policies)) + "\n"


def test_a_reload_past_its_time_limit_keeps_the_rules_in_force_even_when_it_finishes_later(
    settings: Settings,
) -> None:
    holder = RulesHolder(settings)
    assert holder.reload() == []
    before = holder.current
    settings.rules_file.write_text(slow_rules(100))
    began = time.monotonic()
    assert RulesHolder(settings).reload() == []  # the new document is valid: it only takes time
    load_time = time.monotonic() - began
    limit = load_time / 20

    async def reload() -> tuple[list[str], float]:
        began = time.monotonic()
        problems = await holder.reload_async(timeout=limit)
        return [str(p) for p in problems], time.monotonic() - began

    # asyncio.run returns once the worker thread has finished too (it waits for the default executor)
    messages, answered_in = asyncio.run(reload())
    assert messages == [f"{settings.rules_file}:1:1: (document): took longer than {limit:g} s; the rules in force are kept"]  # fmt: skip
    assert answered_in < load_time / 2
    assert holder.current is before  # the load finished meanwhile, and was dropped


def test_an_async_reload_applies_a_valid_file_and_refuses_a_broken_one(settings: Settings) -> None:
    holder = RulesHolder(settings)
    assert holder.reload() == []
    write_config(settings.path.parent, RULES.replace("name: quick", "name: quicker"))
    assert asyncio.run(holder.reload_async()) == []
    assert holder.current is not None and "quicker" in holder.current.versions
    applied = holder.current
    settings.rules_file.write_text(BOMB)
    problems = asyncio.run(holder.reload_async())
    assert [p.line for p in problems] == [BOMB_ALIAS.line]
    assert holder.current is applied


@pytest.fixture
def served(settings: Settings, redis_client: object) -> Iterator[tuple[str, Path]]:
    """The real API under uvicorn in a background thread, its rules in a file of their own (so that a
    reload's other work, re-reading config.yaml, stays small): the base URL and the rules file."""
    config = settings.path.read_text()
    settings.path.write_text(config[: config.index("\nrules:\n")] + "\nrules: rules.yaml\n")
    rules_file = settings.path.parent / "rules.yaml"
    rules_file.write_text(RULES)
    settings = load_settings(settings.path)
    holder = RulesHolder(settings)
    assert settings.redis_url and holder.reload() == []
    app = create_app(settings, Store.connect(settings.redis_url, settings.retention), holder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # As `parley serve` does at start (gateway.cli.run._freeze_startup_heap): a full collection over
    # what earlier tests left in this process would otherwise pause the loop for up to a second.
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}", rules_file
    server.should_exit = True
    thread.join(10)
    gc.unfreeze()


def test_healthz_keeps_answering_while_a_slow_reload_runs(served: tuple[str, Path]) -> None:
    url, rules_file = served
    rules_file.write_text(slow_rules(500))
    reloads: list[httpx.Response] = []

    def reload() -> None:
        headers = {"Authorization": f"Bearer {KEYS['ops']}"}
        reloads.append(httpx.post(f"{url}/v1/admin/rules/reload", headers=headers, timeout=30))

    caller = threading.Thread(target=reload, daemon=True)
    began = time.monotonic()
    caller.start()
    slowest = 0.0
    with httpx.Client(base_url=url, timeout=10) as client:
        while caller.is_alive() and time.monotonic() - began < 15:
            asked = time.monotonic()
            assert client.get("/healthz").json() == {"status": "ok"}
            slowest = max(slowest, time.monotonic() - asked)
            time.sleep(0.02)
    caller.join(15)
    reload_seconds = time.monotonic() - began
    assert reloads and reloads[0].status_code == 200, reloads[0].text if reloads else "no answer"
    assert reload_seconds > 0.3, "the reload was too quick to show anything; make slow_rules slower"
    assert slowest < min(0.5, reload_seconds / 3), (
        f"/healthz took {slowest:.2f} s during a {reload_seconds:.1f} s reload"
    )
