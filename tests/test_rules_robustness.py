"""The rules check never crashes: any document either compiles or raises RulesError with positions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.catalog import Catalog
from rules.problems import RulesError
from rules.validate import compile_rules
from rules.yamlpos import Path as DocPath

CATALOG = Catalog.scan(Path(__file__).resolve().parent / "rules_cases" / "templates")

VALID: dict[str, Any] = {
    "version": 1,
    "defaults": {
        "until": ["responded"],
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "fallback": {"push": "sms", "sms": "email"},
    },
    "destinations": {
        "ops": {"channel": "slack", "address": "#ops"},
        "pager": {"channel": "call", "address": "+14155550123"},
    },
    "policies": [
        {
            "name": "a",
            "match": {"event": "x.*", "where": {"data.p": 1}},
            "template": "full",
            "until": ["acknowledged"],
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "fallback": {"call": "sms"},
            "steps": [
                {"send": ["push", "email"]},
                {"wait": "15m"},
                {"call": "recipient", "bridge": "counterpart", "repeat": {"times": 2, "every": "5m"}},
                {"send": "slack", "to": "ops", "urgent": True, "template": "slack-only"},
                {"first_of": ["push", "sms"], "to": "counterpart"},
                {"call": "pager", "template": "call-only"},
            ],
        },
        {"name": "b", "steps": [{"first_of": ["push", "sms", "email"], "template": "full"}]},
    ],
}

WORDS = [
    *("version", "defaults", "destinations", "policies", "name", "match", "event", "where", "until"),
    *("quiet_hours", "start", "end", "template", "fallback", "steps", "send", "first_of", "call", "wait"),
    *("to", "urgent", "repeat", "times", "every", "bridge", "channel", "address", "recipient", "counterpart"),
    *("sms", "push", "email", "slack", "full", "sms-only", "15m", "0s", "21:00", "responded", "data.x", "ops"),
]
SCALARS = st.one_of(
    st.sampled_from(WORDS),
    st.integers(-3, 200),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.floats(allow_nan=False),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


def _paths(node: Any, path: DocPath = ()) -> list[DocPath]:
    found = [path]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found += _paths(child, (*path, key))
    return found


def _check(text: str) -> None:
    try:
        compile_rules(text, "f.yaml", CATALOG)
    except RulesError as exc:
        assert exc.problems
        assert all(p.line >= 1 and p.column >= 1 and p.message for p in exc.problems)


def test_the_base_document_is_valid() -> None:
    rules = compile_rules(yaml.safe_dump(VALID, sort_keys=False), "f.yaml", CATALOG)
    assert [p.name for p in rules.policies] == ["a", "b"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(_paths(VALID)), VALUES), min_size=1, max_size=3))
def test_replacing_any_value_never_crashes(changes: list[tuple[DocPath, Any]]) -> None:
    doc: Any = copy.deepcopy(VALID)
    for path, value in changes:
        if not path:
            doc = value
            continue
        node = doc
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change replaced a parent
    _check(yaml.safe_dump(doc, sort_keys=False))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=" :-[]{}#&*!|>'\"\n\tab1,?%@`~", max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _check(text)
