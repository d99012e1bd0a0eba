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
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        raise YamlSyntaxError(str(exc.problem or exc.context or "invalid YAML"), pos) from exc
    located = Located(data=None)
    if root is None:
        return located
    located.data = _build(root, (), located)
    return located


def _build(node: yaml.Node, path: Path, out: Located) -> Any:
    out.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key_text = str(key)
            child = (*path, key_text)
            if key_text in result:
                out.duplicate_keys.append(child)
            out.keys[child] = _mark(key_node)
            result[key_text] = _build(value_node, child, out)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), out) for i, item in enumerate(node.value)]
    return _scalar(node)


_CONSTRUCTOR = yaml.SafeLoader("")
_SEXAGESIMAL_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        # A mapping or list used as a key: keep it as text so the schema rejects it.
        return yaml.serialize(node).strip()
    if node.tag in _SEXAGESIMAL_TAGS and ":" in node.value:
        # YAML 1.1 reads an unquoted 21:00 as the number 1260; operators mean a time.
        return node.value
    return _CONSTRUCTOR.construct_object(node, deep=True)


def format_path(path: Path) -> str:
    """`("policies", 0, "steps", 2, "send")` -> `policies[0].steps[2].send`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"
