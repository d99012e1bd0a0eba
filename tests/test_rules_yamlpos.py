"""rules/yamlpos.py: YAML values with the 1-based line and column they were written at."""

from __future__ import annotations

import pytest

from rules.yamlpos import Position, YamlSyntaxError, format_path, load_located

DOC = """\
version: 1
policies:
  - name: alert
    quiet_hours: {start: 21:00, end: "08:00", other: 1:30:00}
    steps:
      - send: [push, sms]
"""


def test_unquoted_clock_times_stay_strings() -> None:
    quiet = load_located(DOC).data["policies"][0]["quiet_hours"]
    assert quiet == {"start": "21:00", "end": "08:00", "other": "1:30:00"}  # not 1260 (YAML 1.1 base 60)


def test_other_scalars_keep_their_yaml_types() -> None:
    data = load_located("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\n").data
    assert data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1"}


def test_value_positions_are_one_based() -> None:
    located = load_located(DOC)
    assert located.position(()) == Position(1, 1)
    assert located.position(("version",)) == Position(1, 10)
    assert located.position(("policies", 0)) == Position(3, 5)
    assert located.position(("policies", 0, "name")) == Position(3, 11)
    assert located.position(("policies", 0, "quiet_hours", "start")) == Position(4, 26)
    assert located.position(("policies", 0, "steps", 0, "send", 1)) == Position(6, 22)


def test_key_positions_are_one_based() -> None:
    located = load_located(DOC)
    assert located.position(("version",), key=True) == Position(1, 1)
    assert located.position(("policies", 0, "quiet_hours"), key=True) == Position(4, 5)
    assert located.position(("policies", 0, "steps", 0, "send"), key=True) == Position(6, 9)


def test_unknown_path_falls_back_to_nearest_parent() -> None:
    located = load_located(DOC)
    assert located.position(("policies", 0, "steps", 0, "template")) == Position(6, 9)
    assert located.position(("policies", 0, "nope"), key=True) == Position(3, 5)
    assert located.position(("elsewhere",)) == Position(1, 1)


def test_empty_document() -> None:
    located = load_located("# only a comment\n")
    assert located.data is None
    assert located.position(()) == Position(1, 1)


def test_duplicate_keys_are_recorded_at_their_second_use() -> None:
    located = load_located("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert located.duplicate_keys == [("b", "c")]
    assert located.data == {"a": 1, "b": {"c": 2}}
    assert located.position(("b", "c"), key=True) == Position(4, 3)


def test_keys_are_kept_as_written() -> None:
    data = load_located("1: a\nnull: b\nyes: c\n[x]: d\n").data
    assert list(data) == ["1", "null", "yes", "[x]"]


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("a: [1, 2\nb: 3\n", Position(2, 2), "expected ',' or ']', but got ':' (while parsing a flow sequence"),
        ("a: 1\n---\nb: 2\n", Position(2, 1), "expected a single document in the stream but found another document"),
        ("a: !custom 1\n", Position(1, 4), "could not determine a constructor for the tag '!custom'"),
        ("a: &x [*x]\n", Position(1, 4), "an alias refers to a value that contains it (a recursive alias)"),
        ("a: &x {k: 1}\nb: {<<: *x}\n", Position(2, 5), "merge keys (<<) are not supported; write the keys out"),
        ("a: *missing\n", Position(1, 4), "found undefined alias 'missing'"),
    ],
)
def test_syntax_errors_carry_a_position(text: str, position: Position, message: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_located(text)
    assert caught.value.position == position
    assert caught.value.message.startswith(message)


def test_non_recursive_aliases_are_expanded() -> None:
    located = load_located("a: &x {k: 1}\nb: *x\n")
    assert located.data == {"a": {"k": 1}, "b": {"k": 1}}
    assert located.position(("b", "k")) == Position(1, 11)  # where the value was written


def test_format_path() -> None:
    assert format_path(()) == "(document)"
    assert format_path(("policies", 0, "steps", 2, "send")) == "policies[0].steps[2].send"
    assert format_path(("rules", "policies", 1, "name")) == "rules.policies[1].name"
