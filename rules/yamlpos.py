"""YAML loading that remembers where every value came from.

Operators edit policies by hand, so every problem we report must point at a
line and column. PyYAML's composed node tree carries those marks; we walk it
once, build plain Python values, and keep a map from value path to position.

Loading is bounded, because a reload runs on every API process and a few
bytes of YAML can describe billions of values ("billion laughs": an alias
repeats its anchor's whole value, nested aliases multiply). A document is
refused, with a problem naming the limit and where it was passed, when it is
larger than MAX_YAML_BYTES (checked before parsing), when building it would
make more than MAX_YAML_VALUES values (each use of an alias counts its
anchor's values again), or when it nests mappings and lists more than
MAX_YAML_DEPTH deep (PyYAML composes recursively: without a limit a file of
`[[[[...` ends in a RecursionError). docs/deployment.md lists the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

# The shipped config.yaml is under 10 KiB; a rules file a hundred times that is still plausible.
MAX_YAML_BYTES = 1024 * 1024
# Every value built counts, also each one re-built through an alias: 100,000 is about a thousand policies.
MAX_YAML_VALUES = 100_000
# Mappings and lists inside one another; a policy document needs under ten.
MAX_YAML_DEPTH = 64

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


def _mark(node: yaml.Node | yaml.Event) -> Position:
    mark = node.start_mark
    return Position(mark.line + 1, mark.column + 1) if mark is not None else Position(1, 1)


def check_size(size: int) -> None:
    """Refuse a document of `size` bytes over MAX_YAML_BYTES, before any parsing."""
    if size > MAX_YAML_BYTES:
        message = f"the document is larger than {MAX_YAML_BYTES} bytes ({MAX_YAML_BYTES // 1024} KiB), the limit"
        raise YamlSyntaxError(message, Position(1, 1))


def _depth_message() -> str:
    return f"nested more than {MAX_YAML_DEPTH} levels deep (the limit for mappings and lists)"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses nesting past MAX_YAML_DEPTH while composing (before the recursion gets
    deep), and notes where each alias was written: the node it stands for carries its anchor's position."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.aliases: dict[tuple[int, int], Position] = {}  # (id(parent node), index or id(key node)) -> alias

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            if parent is not None and index is not None:  # not a key: an alias used as a key keeps its anchor's
                self.aliases[(id(parent), _slot(index))] = _mark(event)
            return super().compose_node(parent, index)
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)
        if self.depth >= MAX_YAML_DEPTH:
            raise YamlSyntaxError(_depth_message(), _mark(event))
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _slot(index: Any) -> int:
    """A child's place in its parent: a sequence index, or the identity of a mapping value's key node."""
    return index if isinstance(index, int) else id(index)


def load_plain(text: str) -> Any:
    """Plain values without positions, for a quick look at a document (an alias shares its anchor's value,
    so nothing is multiplied); the same limits on size and nesting. Raises YamlSyntaxError, yaml.YAMLError
    or ValueError (a number too long to read)."""
    check_size(len(text.encode("utf-8")))
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_located(text: str) -> Located:
    """Parse one YAML document; raise YamlSyntaxError with a position on bad syntax or a passed limit."""
    check_size(len(text.encode("utf-8")))
    located = Located(data=None)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            located.data = _Builder(located, loader.aliases).build(root, (), (), None)
    except yaml.MarkedYAMLError as exc:  # also an unknown tag such as !foo, found while building
        raise _syntax_error(exc) from exc
    finally:
        loader.dispose()
    return located


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    pos = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and message.startswith("but "):  # "but found another document" needs its context
        message = f"{exc.context} {message}"
    elif exc.context and exc.problem and exc.context_mark and mark and exc.context_mark.line != mark.line:
        # The mistake is often where the context began (an unclosed [ or quote), not where it was noticed.
        began = exc.context_mark
        message += f" ({exc.context} that began at line {began.line + 1}, column {began.column + 1})"
    return YamlSyntaxError(message, pos)


@dataclass
class _Builder:
    """Builds plain values from the node tree, counting every value built against MAX_YAML_VALUES."""

    out: Located
    aliases: dict[tuple[int, int], Position]
    built: int = 0

    def build(self, node: yaml.Node, path: Path, parents: tuple[yaml.Node, ...], via: Position | None) -> Any:
        """`parents`: the mappings and lists `node` is in. `via`: where the outermost alias on the way to
        `node` was written (None: not through an alias); a limit passed inside an alias's value is reported
        there, where the operator wrote the copy, rather than at the anchor."""
        self.built += 1
        if self.built > MAX_YAML_VALUES:
            raise YamlSyntaxError(_VALUES_MESSAGE, via or _mark(node))
        self.out.values[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        if any(node is parent for parent in parents):
            raise YamlSyntaxError("an alias refers to a value that contains it (a recursive alias)", _mark(node))
        if len(parents) >= MAX_YAML_DEPTH:
            raise YamlSyntaxError(f"{_depth_message()[:-1]}, once aliases are expanded)", via or _mark(node))
        inner = (*parents, node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, inner, via)
        aliases = self.aliases
        return [
            self.build(item, (*path, i), inner, via or aliases.get((id(node), i))) for i, item in enumerate(node.value)
        ]

    def _mapping(self, node: yaml.MappingNode, path: Path, parents: tuple[yaml.Node, ...], via: Position | None) -> Any:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError("merge keys (<<) are not supported; write the keys out", _mark(key_node))
            # Keys as written: `null:` stays "null", not "None"; a list or mapping key is kept as text.
            key_text = key_node.value if isinstance(key_node, yaml.ScalarNode) else yaml.serialize(key_node).strip()
            child = (*path, key_text)
            if key_text in result:
                self.out.duplicate_keys.append(child)
            self.out.keys[child] = _mark(key_node)
            result[key_text] = self.build(value_node, child, parents, via or self.aliases.get((id(node), id(key_node))))
        return result


_VALUES_MESSAGE = f"more than {MAX_YAML_VALUES} values once aliases are expanded (the limit; each use of an alias counts all of its anchor's values again)"  # fmt: skip
_SEXAGESIMAL_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node) -> Any:
    if node.tag == _STR_TAG:  # most values; what the constructor would return, without making one
        return node.value
    if node.tag in _SEXAGESIMAL_TAGS and ":" in node.value:
        # YAML 1.1 reads an unquoted 21:00 as the number 1260; operators mean a time.
        return node.value
    try:
        # A fresh constructor each time: a shared one keeps every node it built (and is not thread-safe).
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except ValueError as exc:  # Python reads at most 4300 digits of an integer
        raise YamlSyntaxError(f"cannot read this value: {str(exc).split(';')[0]}", _mark(node)) from None


def format_path(path: Path) -> str:
    """`("policies", 0, "steps", 2, "send")` -> `policies[0].steps[2].send`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"
