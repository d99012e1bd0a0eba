"""The sandboxed Jinja2 environments templates are compiled in, and what each part file is.

Three environments share one loader (the templates folder) and one rule: intent
data are values, never template code, and a missing variable is an error.
They differ in how a `{{ value }}` is written out:

- text (`*.txt`): as it is; `email.html` is auto-escaped as HTML (by extension);
- Slack (`slack.txt`): `&`, `<` and `>` escaped, so data cannot @-mention
  (`<!channel>`) or forge a link; the template's own text may use mrkdwn;
- Slack blocks (`slack.blocks.json`): escaped as above, then as JSON string
  content, so a value cannot break out of the string it is placed in.

The sandbox is Jinja's immutable one: a template cannot change the intent it is rendered for
(`data.update(...)`, `data.tags.append(...)`), nor any list or dict. Loops, calls, operators and
filters are bounded in time, work and size (channels/rendering/sandbox.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment, modifies_known_mutable
from jinja2.utils import missing

from channels.rendering import sandbox as limits
from channels.rendering.formatting import FILTERS
from rules.catalog import PARTS, REQUIRED_PARTS
from rules.model import Channel

PART_FILES = frozenset(file for parts in PARTS.values() for file in parts.values())
ROOTS = ("event", "data", "recipient", "counterpart", "to")  # what a template may use
PERSON_FIELDS = ("id", "locale", "timezone")  # all a template sees of a person


class RenderError(Exception):
    """A template that cannot be rendered for this intent (missing variable, syntax, no file, a limit)."""


def required(channel: Channel) -> list[str]:
    return list(REQUIRED_PARTS[channel])


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(value: Any) -> str:
    return escape_mrkdwn(str(value))


def _slack_json(value: Any) -> str:
    return json.dumps(escape_mrkdwn(str(value)), ensure_ascii=False)[1:-1]


class ClearUndefined(StrictUndefined):
    """StrictUndefined whose message names the intent field that is missing."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        if self._undefined_obj is missing:
            return f"{name!r} is undefined (a template can use {', '.join(ROOTS)})"
        # The container's name, from the context of the render under way (channels.rendering.sandbox.Render), by
        # id: computed only when a message needs it (walking the context on every render was 2 % of a
        # worker's CPU per send).
        where = name_containers(limits.render_context()).get(id(self._undefined_obj))
        if where is None:
            return str(super()._undefined_message)
        if where in ROOTS[2:]:
            return f"{where}.{name} is undefined (a template sees only {', '.join(PERSON_FIELDS)} of a person)"
        return f"{where}.{name} is undefined: the intent's {where} has no {name!r}"


def name_containers(context: dict[str, Any]) -> dict[int, str]:
    """Dotted names of the mappings and lists in a render context (bounded), keyed by id."""
    names: dict[int, str] = {}

    def visit(value: Any, path: str, depth: int) -> None:
        if len(names) > 1000 or depth > 8 or not isinstance(value, (dict, list)):
            return
        names.setdefault(id(value), path)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            visit(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]", depth + 1)

    for root, value in context.items():
        visit(value, root, 0)
    return names


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Bounded(CodeGenerator):
    """Compiles each `for` loop to iterate `environment.steps(iterable)`, whose every item is a step of the
    render's budget, and each `~` to be measured. Rewriting the loop's iterable node, rather than the code
    Jinja writes for a loop, keeps everything else about loops (else, loop.*, recursive, filters) Jinja's."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        steps = nodes.EnvironmentAttribute("steps", lineno=node.iter.lineno)
        node.iter = nodes.Call(steps, [node.iter], [], None, None, lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.charge(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the render limits; `data.listing` on a plain dict is looked up without
    raising an exception."""

    code_generator_class = _Bounded
    intercepted_binops = frozenset({"*", "**", "+", "%"})  # the ones that can build big values
    concat = staticmethod(limits.bounded_concat)
    steps = limits.Steps
    charge = staticmethod(limits.charge)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries the attribute first and takes the item when that raises AttributeError, which costs
        # more than the rest of a render's lookups together. A dict whose type has no such attribute gives
        # the item either way: the same answer, from the same sandbox rules (items are not filtered).
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        if not modifies_known_mutable(obj, attribute):
            return super().unsafe_undefined(obj, attribute)
        where = name_containers(limits.render_context()).get(id(obj), type(obj).__name__)
        message = f"{where}.{attribute}() is refused: a template can read values, not change them"
        return self.undefined(message, name=attribute, obj=obj, exc=SecurityError)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return limits.charge(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        limits.current().step()
        args = limits.check_call(obj, args, kwargs)
        return limits.charge(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        formats = super().wrap_str_format(value)
        if formats is None:
            return None
        pattern: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            limits.check_format(pattern, args, kwargs)
            text: str = limits.charge(formats(*args, **kwargs))  # Markup stays Markup
            return text

        return checked


def _environment(
    loader: FileSystemLoader, finalize: Callable[[Any], Any] | None, *, html: bool = False
) -> SandboxedEnvironment:
    env = _Sandbox(
        loader=loader,
        undefined=ClearUndefined,
        # HTML parts escape what they insert, the others do not. A fixed setting per environment, not
        # select_autoescape: Jinja calls that function on every render to decide.
        autoescape=html,
        keep_trailing_newline=False,
        auto_reload=True,
        finalize=finalize,
    )
    env.filters.update(FILTERS)
    env.filters = limits.guard_filters(env.filters)
    return env


class Environments:
    """The environments for one templates folder; `for_file` picks the one a part file needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        loader = FileSystemLoader(str(root))
        self.text = _environment(loader, None)
        self.html = _environment(loader, None, html=True)
        self.slack = _environment(loader, _slack)
        self.slack_json = _environment(loader, _slack_json)

    def for_file(self, file: str) -> SandboxedEnvironment:
        if file == "slack.txt":
            return self.slack
        if file == "slack.blocks.json":
            return self.slack_json
        return self.html if file.endswith(".html") else self.text


def line_of(exc: BaseException, filename: str) -> int | None:
    """The template line an error happened on: from a syntax error, or the rewritten traceback."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    wanted = os.path.normpath(filename)
    found = None
    for tb in _frames(exc.__traceback__):
        if tb.tb_frame.f_code.co_filename == wanted:
            found = tb.tb_lineno
    return found


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next
