"""Limits on one render of a template: its time, its work, and the size of what it builds.

Templates are operator-written code run on every send. Jinja's sandbox keeps them from reaching
Python, but not from spending without bound: a loop over range(100000) inside another, a macro
that calls itself twice, `'x' * 10**9`. A render that passes a limit raises LimitError, which
channels/rendering/render.py reports as that part's RenderError (the delivery fails like on any render
error, a preview answers 422 render_failed), naming the limit. docs/templates.md lists them.

- Work and time: each loop iteration and each call (macro, method, range(), loop() of a recursive
  loop) is a step. Jinja has no while loop and repeats work only through loops and calls, so
  counting steps bounds the work, and the clock is read at every step (a step may be slow: a
  filter over 100,000 items). The budget is per render of one message (all its parts).
- Size: no text or list a template builds may be longer than MAX_TEXT, a list counting its items
  and the text in them, through nested lists (about as long as it would print). What can grow
  without bound is checked before it is built: `*`, `**`, printf `%` and str.format widths, and the
  filters and text methods that widen, repeat or join (center, indent, format, replace, join,
  wordwrap, batch, slice, sum, ljust, rjust, zfill, expandtabs, translate, lipsum). Everything
  else a filter, call, `+` or `~` returns is measured after (it is at most a few times its inputs).
  All a render builds together is bounded by MAX_BUILT, or a map over a long list could keep many
  values just under MAX_TEXT. A part's output is at most MAX_TEXT characters, counted before the
  pieces are joined.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
import types
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from jinja2 import TemplateRuntimeError
from jinja2.filters import make_attrgetter
from jinja2.runtime import LoopContext
from jinja2.utils import generate_lorem_ipsum

MAX_TEXT = 256 * 1024  # characters of a rendered part, and of any text or list a template builds
MAX_BUILT = 16 * MAX_TEXT  # characters and items built by one render in all: memory stays in tens of MB
MAX_STEPS = 1_000_000  # loop iterations and calls in one render: well under a second of Jinja
TIME_LIMIT_S = 1.0  # per render of one message; a shipped template takes well under a millisecond
MAX_INT_BITS = 16_384  # whole numbers from * and **; Python prints at most 4,300 digits (14,300 bits) anyway

_CONTAINERS = (list, tuple, dict, set, frozenset)
_TEXTS = (str, bytes)


class LimitError(TemplateRuntimeError):
    """A render that passed one of the limits; the message names it."""


class Render:
    """One render under way (the parts of one message): what it may still spend, and its context (which
    channels.rendering.templating names containers from, for a clear message). A context manager, entered once per
    message: a class with slots, as channels.rendering.formatting.formatting, to cost little per send."""

    __slots__ = ("_token", "built", "context", "deadline", "steps")

    def __init__(self, context: dict[str, Any] | None = None) -> None:
        self.context = context if context is not None else {}
        self.steps = MAX_STEPS
        self.built = 0
        self.deadline = time.monotonic() + TIME_LIMIT_S

    def __enter__(self) -> Render:
        self._token = _RENDER.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _RENDER.reset(self._token)

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise LimitError(f"more than {MAX_STEPS:,} loop iterations and calls (the limit for one render)")
        if time.monotonic() > self.deadline:
            raise LimitError(f"took longer than {TIME_LIMIT_S:g} s (the limit for one render)")

    def build(self, size: int) -> None:
        expect(size)
        self.built += size
        if self.built > MAX_BUILT:
            raise LimitError(f"built more than {MAX_BUILT:,} characters in all (the limit for one render)")


_RENDER: ContextVar[Render | None] = ContextVar("parley_render", default=None)


def current() -> Render:
    """The render under way; outside one (a tool rendering on its own), a fresh budget for each loop and
    each operation, so that each is still bounded."""
    return _RENDER.get() or Render()


def render_context() -> dict[str, Any]:
    """The context of the render under way ({} outside one)."""
    render = _RENDER.get()
    return render.context if render is not None else {}


def expect(size: int) -> None:
    """Refuse to build a text or list of `size`."""
    if size > MAX_TEXT:
        raise LimitError(f"would make a text or list of {size:,} characters or items; the limit is {MAX_TEXT:,}")


def size(value: Any) -> int:
    """Characters of a text; items of a list, tuple, set or dict plus the size of each (keys too), through
    nested ones, each time one is repeated; 1 for anything else. Stops counting past MAX_TEXT."""
    if isinstance(value, _TEXTS):
        return len(value)
    if isinstance(value, _CONTAINERS):
        return _tree(value, {})
    return 1


def _tree(value: Any, known: dict[int, int]) -> int:
    total = known.get(id(value))
    if total is not None:  # a list repeated by reference is counted again, but measured once
        return total
    total = len(value)
    for item in (x for pair in value.items() for x in pair) if isinstance(value, dict) else value:
        if isinstance(item, _TEXTS):
            total += len(item)
        elif isinstance(item, _CONTAINERS):
            total += _tree(item, known)
        if total > MAX_TEXT:
            break
    known[id(value)] = total
    return total


def charge(value: Any) -> Any:
    """Count a value a template built against the limits; return it."""
    if isinstance(value, str):
        current().build(len(value))
    elif isinstance(value, (bytes, *_CONTAINERS)):
        current().build(size(value))
    return value


def bounded_concat(pieces: Iterable[str]) -> str:
    """Environment.concat (a render's output, a {% set %} block, a macro's): at most MAX_TEXT characters.
    Many pieces (a loop's output) are measured before they are joined; a few are joined first, which
    is cheaper: a shipped template's parts are a handful of pieces each."""
    parts = list(pieces)
    if len(parts) > _FEW_PIECES and sum(map(len, parts)) > MAX_TEXT:
        raise LimitError(f"would render over {MAX_TEXT:,} characters; the limit is {MAX_TEXT:,}")
    text = "".join(parts)
    if len(text) > MAX_TEXT:
        raise LimitError(f"would render {len(text):,} characters; the limit is {MAX_TEXT:,}")
    return text


_FEW_PIECES = 32


class Steps:
    """A loop's iterable (see channels.rendering.templating): each item taken is a step. Keeps the length, which
    loop.length asks for."""

    __slots__ = ("items",)

    def __init__(self, items: Any) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        render = current()
        for item in self.items:
            render.step()
            yield item


# -- operators -------------------------------------------------------------------------------------------


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` (an intercepted *, **, + or %) whose result would pass a limit."""
    if operator == "*":
        if isinstance(left, int) and not isinstance(right, int):
            left, right = right, left
        if isinstance(right, int) and isinstance(left, (*_TEXTS, list, tuple)):
            expect(size(left) * max(right, 0))
        elif isinstance(left, int) and isinstance(right, int):
            _bits(left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _bits(left.bit_length() * right)
    elif operator == "+":
        if isinstance(left, (*_TEXTS, list, tuple)) and isinstance(right, (*_TEXTS, list, tuple)):
            expect(size(left) + size(right))
    elif operator == "%" and isinstance(left, str):
        check_printf(left, right)


def _bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise LimitError(f"would make a whole number of about {bits:,} bits; the limit is {MAX_INT_BITS:,}")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")
_FORMAT_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NESTED_SPEC = re.compile(r":[^{}]*\{")


def check_printf(pattern: str, values: Any) -> None:
    """Widths and precisions of a printf-style pattern (`%10s`, `%.3f`, `%*d`) within MAX_TEXT."""
    star = False
    for width, precision in _PRINTF.findall(pattern):
        star = star or "*" in (width, precision)
        _numbers(f"{width} {precision}")
    if star:
        _ints(values if isinstance(values, tuple) else (values,))


def check_format(pattern: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Widths and precisions of a str.format pattern (`{:>10}`), also those taken from arguments (`{:{w}}`)."""
    for spec in _FORMAT_SPEC.findall(pattern):
        _numbers(spec)
    if _NESTED_SPEC.search(pattern):
        _ints((*args, *kwargs.values()))


def _numbers(text: str) -> None:
    for digits in re.findall(r"\d+", text):
        if len(digits) > 7 or int(digits) > MAX_TEXT:
            raise LimitError(f"a width or precision of {digits[:12]}; the limit is {MAX_TEXT:,}")


def _ints(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int) and value > MAX_TEXT:
            raise LimitError(f"a width or precision of {value:,}; the limit is {MAX_TEXT:,}")


def _joined(items: list[Any], separator: Any) -> None:
    """Refuse joining `items` (as text) with `separator` into more than MAX_TEXT characters."""
    total = len(str(separator)) * max(len(items) - 1, 0)
    for item in items:
        total += len(item) if isinstance(item, str) else len(str(item))
        expect(total)
    expect(total)


def _replaced(text: Any, old: Any, new: Any, count: Any) -> None:
    text, old, new = str(text), str(old), str(new)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    expect(len(text) + times * max(len(new) - len(old), 0))


# -- filters and calls -----------------------------------------------------------------------------------


def guard_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter measured after (charge); those that widen, repeat or join checked before, too."""
    return {name: _guard(function, _FILTER_CHECKS.get(name)) for name, function in filters.items()}


def _guard(function: Callable[..., Any], check: Callable[[dict[str, Any]], None] | None) -> Callable[..., Any]:
    # functools.wraps keeps Jinja's marks (pass_context, pass_eval_context, ...), so it calls these as before.
    if check is None:

        @functools.wraps(function)
        def measured(*args: Any, **kwargs: Any) -> Any:
            return charge(function(*args, **kwargs))

        return measured
    signature = _signature(function)

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check(bound.arguments)  # may replace an iterable it had to read with the list it read
        return charge(function(*bound.args, **bound.kwargs))

    return checked


def _signature(function: Callable[..., Any]) -> inspect.Signature:
    """The parameters Jinja calls a filter with: Jinja's async_variant wrapper (join, slice, sum, ...) asks
    for the eval context, which it drops, for a filter that does not take one."""
    signature = inspect.signature(function)
    if getattr(function, "jinja_pass_arg", None) and not getattr(inspect.unwrap(function), "jinja_pass_arg", None):
        passed = inspect.Parameter("_passed", inspect.Parameter.POSITIONAL_ONLY)
        signature = signature.replace(parameters=[passed, *signature.parameters.values()])
    return signature


def _width(value: Any) -> None:
    if isinstance(value, int):
        expect(value)


def _items(arguments: dict[str, Any], key: str) -> list[Any]:
    """The filter's iterable read into a list (its `attribute` applied), put back for the filter to use."""
    items: Iterable[Any] = arguments[key]
    if arguments.get("attribute") is not None:
        environment = arguments["eval_ctx"].environment if "eval_ctx" in arguments else arguments["environment"]
        items = map(make_attrgetter(environment, arguments["attribute"]), items)
        arguments["attribute"] = None
    arguments[key] = listed = list(items)
    return listed


def _indent(a: dict[str, Any]) -> None:
    text, width = str(a["s"]), a["width"]
    each = width if isinstance(width, int) else len(str(width))
    expect(len(text) + (text.count("\n") + 1) * max(each, 0))


def _wordwrap(a: dict[str, Any]) -> None:
    text, width, wrap = str(a["s"]), a["width"], a["wrapstring"]
    lines = len(text) + 1  # at most one per character; far fewer when the width allows
    if isinstance(width, int) and width > 0:
        lines = min(lines, sum(map(text.count, (" ", "\n", "\t"))) + len(text) // width + 1)
    expect(len(text) + lines * (1 if wrap is None else len(str(wrap))))


def _sum(a: dict[str, Any]) -> None:
    if not isinstance(a["start"], (int, float)):  # lists (or texts) added up: as long as all together
        expect(size(a["start"]) + sum(size(item) for item in _items(a, "iterable")))


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": lambda a: _width(a["width"]),
    "indent": _indent,
    "format": lambda a: check_printf(str(a["value"]), a["kwargs"] or a["args"]),
    "replace": lambda a: _replaced(a["s"], a["old"], a["new"], a["count"]),
    "join": lambda a: _joined(_items(a, "value"), a["d"]),
    "wordwrap": _wordwrap,
    "batch": lambda a: _width(a["linecount"] if a["fill_with"] is not None else 0),
    "slice": lambda a: _width(a["slices"]),
    "sum": _sum,
}
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call (from template code) whose result would pass a limit; the arguments to call it with."""
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str) and isinstance(obj, (types.BuiltinMethodType, types.MethodType)):
        return _text_method(owner, obj.__name__, args, kwargs)
    if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop: its items are steps too
        return (Steps(args[0]), *args[1:])
    if obj is generate_lorem_ipsum:  # the lipsum() global: n paragraphs of up to max words
        bound = inspect.signature(obj).bind(*args, **kwargs)
        bound.apply_defaults()
        n, low, high = (bound.arguments[k] for k in ("n", "min", "max"))
        if all(isinstance(x, int) for x in (n, low, high)):
            expect(n * max(low, high, 0) * 12)
    return args


def _text_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    if name in _WIDTH_METHODS and args:
        _width(args[0])
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            expect(len(text) + text.count("\t") * tab)
    elif name == "replace" and len(args) >= 2:
        _replaced(text, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
    elif name == "join" and args:
        items = list(args[0])
        _joined(items, text)
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        expect(len(text) * longest)
    return args
