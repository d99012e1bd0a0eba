"""Limits on a render: a template cannot change the intent, run for long, or build huge values.

Operator-written templates run on every send; a loop inside a loop, a self-calling macro or
`'x' * 10**9` must fail that one render quickly, with a message naming the limit, and never pin a
worker or exhaust its memory. Templates within the limits render exactly as before."""

from __future__ import annotations

import shutil
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from channels.rendering.check import check_templates
from channels.rendering.render import Renderer, RenderError
from channels.rendering.sandbox import MAX_BUILT, MAX_STEPS, MAX_TEXT, TIME_LIMIT_S
from gateway.config import Settings, load_settings
from rules.catalog import Catalog
from rules.intent import Intent
from rules.model import Channel
from tests.fixtures import REPO, Clock, Harness, intent

TEMPLATES = REPO / "templates"


def make(root: Path, files: dict[str, str]) -> Renderer:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return Renderer(root)


def an_intent(**data: Any) -> Intent:
    body = intent(data={"listing": "Red bike", "message": "Is it still available?", "tags": ["a", "b"], **data})
    return Intent.model_validate(body)


def within(seconds: float, work: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """Run `work` in a thread (so that a hang fails the test): the exception it raised, and its seconds."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0], time.monotonic() - began


# -- the intent is read-only -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ data.update({'listing': 'changed'}) }}", "data.update() is refused: a template can read values, not change them"),
        ("{{ data.tags.append('c') }}", "data.tags.append() is refused: a template can read values, not change them"),
        ("{% set _ = data.pop('listing') %}x", "data.pop() is refused"),
        ("{{ data.setdefault('extra', 1) }}", "data.setdefault() is refused"),
        ("{% set l = [] %}{{ l.append(1) }}", "list.append() is refused"),
        ("{{ recipient.push_tokens.append('x') }}", "recipient.push_tokens is undefined"),  # not visible at all
    ],
)  # fmt: skip
def test_a_template_cannot_change_the_intent(tmp_path: Path, template: str, message: str) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": template})
    subject = an_intent()
    before = subject.model_dump()
    with pytest.raises(RenderError) as caught:
        renderer.render("t", Channel.SMS, subject, None)
    assert f"t/en/sms.txt:1: {message}" in str(caught.value)
    assert subject.model_dump() == before


# -- time and work ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x",
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ b }}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}x",
        "{% for a in range(100000) %}{{ range(100000) | sum }}{% endfor %}",
        "{% for x in [1] recursive %}{% if loop.depth < 4 %}{{ loop(range(100000)) }}{% endif %}{% endfor %}x",
    ],
)
def test_a_render_that_runs_long_is_stopped_quickly(tmp_path: Path, template: str) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": template})
    error, seconds = within(10, lambda: renderer.render("t", Channel.SMS, an_intent(), None))
    assert isinstance(error, RenderError)
    assert seconds < TIME_LIMIT_S + 1.5
    limits = (f"more than {MAX_STEPS:,} loop iterations and calls", f"took longer than {TIME_LIMIT_S:g} s")
    assert str(error).startswith("t/en/sms.txt:1: ") and any(limit in str(error) for limit in limits), str(error)


# -- size -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "'x' * 10**9",
        "10**9 * 'x'",
        "[1] * 10**9",
        "[data.message] * 100000",
        "2 ** (10**9)",  # Jinja reads 2 ** 10**9 as (2 ** 10) ** 9
        "'%999999999s' % 'x'",
        "'%.999999999f' % 1.5",
        "'%*s' % (10**9, 'x')",
        "'{:>999999999}'.format('x')",
        "'{:>{w}}'.format('x', w=10**9)",
        "'x' | center(1000000000)",
        "'a\\nb' | indent(10**9)",
        "'%999999999s' | format('x')",
        "'ab' | replace('a', 'x' * 200000) | replace('x', 'yy')",
        "range(100000) | join(',')",
        "range(100000) | map(attribute='x', default=data.message) | join",
        "range(100000) | map(attribute='x', default=data.message) | list | length",
        "[1] | batch(10**9, 0) | list",
        "[1] | slice(10**9) | list",
        "'x'.ljust(10**9)",
        "'x'.zfill(10**9)",
        "'\\t'.expandtabs(10**9)",
        "'-'.join(range(100000))",
        "'abc'.translate({97: 'x' * 200000}) * 2",
        "lipsum(n=100000)",
    ],
)
def test_a_huge_value_is_refused_before_it_is_built(tmp_path: Path, expression: str) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": "{{ " + expression + " }}"})
    tracemalloc.start()
    try:
        error, seconds = within(10, lambda: renderer.render("t", Channel.SMS, an_intent(message="m" * 2000), None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, RenderError), error
    assert str(error).startswith("t/en/sms.txt:1: "), str(error)
    assert "; the limit is " in str(error) or "(the limit for one render)" in str(error), str(error)
    assert peak < 16 * 1024 * 1024, f"{peak / 1e6:.0f} MB allocated"
    assert seconds < 3  # tracemalloc slows every allocation several-fold


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(1000) %}{{ data.message }}{% endfor %}",  # a part longer than the limit
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
        "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}",
        "{% for i in range(100000) %}{% set t = data.message | upper %}{% endfor %}{{ range(100000) | map('center', 200000) | list | length }}",
    ],
)  # fmt: skip
def test_a_render_that_keeps_growing_a_value_is_refused(tmp_path: Path, template: str) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": template})
    tracemalloc.start()
    try:
        error, _ = within(10, lambda: renderer.render("t", Channel.SMS, an_intent(message="m" * 1000), None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, RenderError), error
    limits = (f"the limit is {MAX_TEXT:,}", f"more than {MAX_BUILT:,} characters", "the limit for one render")
    assert any(limit in str(error) for limit in limits), str(error)
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB allocated"


def test_checking_templates_does_not_build_a_huge_constant(tmp_path: Path) -> None:
    """Jinja computes constant expressions when it compiles (parley rules check, every reload): a filter
    applied to constants is one, and used to be built there."""
    make(tmp_path, {"t/en/sms.txt": "{{ 'x' | center(100000000) }}{{ 'ab' | replace('a', 'x' * 10) }}"})
    tracemalloc.start()
    try:
        problems, _ = check_templates(Catalog.scan(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == []
    assert peak < 16 * 1024 * 1024, f"{peak / 1e6:.0f} MB allocated"


# -- templates within the limits ------------------------------------------------------------------------

WITHIN = """{% macro item(x) %}[{{ x | center(5) }}]{% endmacro -%}
{% set ns = namespace(total=0) -%}
{% for tag in data.tags %}{{ item(tag) }}{% set ns.total = ns.total + loop.index %}{% endfor %} {{ ns.total }}
{{ data.tags | join(', ') }} {{ ('ab' * 3) | replace('b', 'c') }} {{ '%5s|%-3d' % ('x', 7) }} {{ '{:>4}'.format('y') }}
{{ range(3) | map('string') | join('-') }} {{ 2 ** 10 }} {{ [1, 2] + [3] }} {{ 'a' ~ 1 }} {{ 'q\\nr' | indent(2) }}
{% for row in [[1, 2], [3]] recursive %}{% if row is iterable %}{{ loop(row) }}{% else %}{{ row }}{% endif %}{% endfor %}
{% set l = [3, 1, 2] %}{{ l | sort | list }} {{ data | dictsort | first }} {{ 'x'.ljust(3) }}| {{ 'abc'.upper() }}"""

WITHIN_RENDERED = """[  a  ][  b  ] 3
a, b acacac     x|7      y
0-1-2 1024 [1, 2, 3] a1 q
  r
123
[1, 2, 3] ('listing', 'Red bike') x  | ABC"""


def test_templates_within_the_limits_render_as_before(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/sms.txt": WITHIN})
    parts = renderer.render("t", Channel.SMS, an_intent(), None).parts
    assert parts == {"body": WITHIN_RENDERED}


def test_a_long_message_within_the_limits_renders(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"t/en/email.subject.txt": "s", "t/en/email.txt": "{{ data.message * 3 }}"})
    message = "m" * (MAX_TEXT // 4)
    assert renderer.render("t", Channel.EMAIL, an_intent(message=message), None).parts["text"] == message * 3


# -- what a user sees: the preview answers 422, a delivery records the error ------------------------------


@pytest.fixture
def hostile(tmp_path: Path, settings: Settings, redis_client: redis.Redis) -> Any:
    """The harness with a copy of the shipped templates whose inquiry-new SMS loops for ages."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "inquiry-new" / "en" / "sms.txt").write_text(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}{{ data.listing }}"
    )
    config = settings.path.read_text().replace(f"templates: {TEMPLATES}", f"templates: {templates}")
    settings.path.write_text(config)
    harness = Harness(load_settings(settings.path), redis_client, Clock())
    yield harness
    harness.close()


def test_a_preview_past_a_limit_answers_422_and_a_delivery_records_the_error(hostile: Harness) -> None:
    began = time.monotonic()
    response = hostile.call("POST", "/v1/templates/inquiry-new/preview", json={"channel": "sms", "intent": intent()})
    assert time.monotonic() - began < TIME_LIMIT_S + 2
    assert response.status_code == 422
    assert response.json()["error"] == "render_failed"
    assert "inquiry-new/en/sms.txt:1: " in response.json()["message"]
    assert "loop iterations and calls" in response.json()["message"] or "took longer than" in response.json()["message"]
    nid = hostile.notify(event="quick.sms")  # email and SMS at once
    hostile.work()
    deliveries = {d["channel"]: d for d in hostile.show(nid)["deliveries"] if d["step"] == 0}
    assert deliveries["email"]["status"] == "delivered"
    assert deliveries["sms"]["status"] == "failed"
    assert "inquiry-new/en/sms.txt:1: " in deliveries["sms"]["error"]
