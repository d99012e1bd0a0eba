"""YAML loading that remembers where every value came from.

Operators edit policies by hand, so every problem we report must point at a
line and column. PyYAML's composed node tree carries those marks; we walk it
once, build plain Python values, and keep a map from value path to position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

PathPart = str | int
Path = tuple[PathPart, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Located:
    """A loaded document: plain data plus positions of values and mapping keys."""

    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    duplicate_keys: list[Path] = field(default_factory=list)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """Closest known position for `path`, walking up to a parent if needed."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        probe = path
        while probe:
            probe = probe[:-1]
            if probe in self.values:
                return self.values[probe]
        return Position(1, 1)


class YamlSyntaxError(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _mark(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def load_located(text: str) -> Located:
    """Parse one YAML document; raise YamlSyntaxError with a position on bad syntax."""
    located = Located(data=None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            located.data = _build(root, (), located, ())
    except yaml.MarkedYAMLError as exc:  # also an unknown tag such as !foo, found while building
        mark = exc.problem_mark or exc.context_mark
        pos = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and message.startswith("but "):  # "but found another document" needs its context
            message = f"{exc.context} {message}"
        elif exc.context and exc.problem and exc.context_mark and mark and exc.context_mark.line != mark.line:
            # The mistake is often where the context began (an unclosed [ or quote), not where it was noticed.
            began = exc.context_mark
            message += f" ({exc.context} that began at line {began.line + 1}, column {began.column + 1})"
        raise YamlSyntaxError(message, pos) from exc
    return located


def _build(node: yaml.Node, path: Path, out: Located, parents: tuple[yaml.Node, ...]) -> Any:
    if any(node is parent for parent in parents):
        raise YamlSyntaxError("an alias refers to a value that contains it (a recursive alias)", _mark(node))
    parents = (*parents, node)
    out.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError("merge keys (<<) are not supported; write the keys out", _mark(key_node))
            # Keys as written: `null:` stays "null", not "None"; a list or mapping key is kept as text.
            key_text = key_node.value if isinstance(key_node, yaml.ScalarNode) else yaml.serialize(key_node).strip()
            child = (*path, key_text)
            if key_text in result:
                out.duplicate_keys.append(child)
            out.keys[child] = _mark(key_node)
            result[key_text] = _build(value_node, child, out, parents)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), out, parents) for i, item in enumerate(node.value)]
    return _scalar(node)


_SEXAGESIMAL_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _scalar(node: yaml.Node) -> Any:
    if node.tag in _SEXAGESIMAL_TAGS and ":" in node.value:
        # YAML 1.1 reads an unquoted 21:00 as the number 1260; operators mean a time.
        return node.value
    # A fresh constructor each time: a shared one keeps every node it built (and is not thread-safe).
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def format_path(path: Path) -> str:
    """`("policies", 0, "steps", 2, "send")` -> `policies[0].steps[2].send`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"
