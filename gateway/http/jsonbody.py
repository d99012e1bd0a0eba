"""JSON bodies of /v1 calls: refused unless they are declared JSON, or if a string holds a lone surrogate.

Both checks run here, before routing, so every /v1 route (the hot `POST /v1/notifications`, which reads its
body itself, included) is covered without a line of its own, and so a route added later is too.

* Media type: a body must come as `application/json` (a `charset` must be UTF-8) or `application/*+json`;
  anything else is 415. Without this a form, XML or text body was parsed as JSON anyway, or reached the
  route as bytes and got a confusing 422.
* Lone surrogates: JSON may write `"\\ud800"`, a UTF-16 half that is no character. Python's parser accepts
  it, and the string then cannot be encoded as UTF-8 for Redis or for the response: a 500. A body that
  cannot hold one (no `\\uD800`-`\\uDFFF` escape in it: nearly every body) costs one regex scan; only the
  others are parsed here to find the string.

The body is read completely before the app sees it and handed on unchanged. That holds no more than the
app holds anyway: gateway.http.bodylimit, added after this middleware and so wrapped around it, caps it first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rules.yamlpos import format_path

CHECKED_METHODS = frozenset({"POST", "PUT", "PATCH"})  # the other methods' bodies are never read
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
JSON_MEDIA = re.compile(r'application/(?:[^/;\s]+\+)?json\s*(?:;\s*charset\s*=\s*"?utf-?8"?\s*)?$', re.IGNORECASE)
JSON_ONLY = "send the body as JSON, with Content-Type: application/json"


def is_json(content_type: str | None) -> bool:
    """`application/json` or `application/*+json`, with no charset or UTF-8."""
    return content_type is not None and JSON_MEDIA.match(content_type) is not None


def lone_surrogate(body: bytes) -> str | None:
    """Where the body's first string (or key) with a lone surrogate is (`data.listing[1]`), or None."""
    if b"\\u" not in body or SURROGATE_ESCAPE.search(body) is None:  # the first test is a memchr
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON (or nested past the parser): the route reports it, with the place it failed
    path = _first_surrogate(value)
    return None if path is None else format_path(path) if path else "(body)"


def _first_surrogate(value: Any) -> tuple[str | int, ...] | None:
    # A loop, not recursion: the parser accepts nesting deeper than Python's stack allows to walk.
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str) and not _encodable(item):
            return path
        if isinstance(item, dict):
            if not all(_encodable(key) for key in item):
                return path  # the key's object: naming the key would put the surrogate in the answer
            stack.extend(((child, (*path, key)) for key, child in reversed(item.items())))
        elif isinstance(item, list):
            stack.extend(((child, (*path, index)) for index, child in reversed(list(enumerate(item)))))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonBodies:
    """ASGI middleware for the checks above, on /v1 paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHECKED_METHODS or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        messages = await _read_all(receive)
        body = messages[0].get("body", b"") if len(messages) == 1 else b"".join(m.get("body", b"") for m in messages)
        refused = _refusal(scope, body) if body else None  # no body: nothing to check (a route needing one says so)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)


def _refusal(scope: Scope, body: bytes) -> JSONResponse | None:
    content_type = _content_type(scope)
    if content_type != b"application/json" and not is_json(content_type.decode("latin-1") if content_type else None):
        got = repr(content_type.decode("latin-1")) if content_type else "none"
        problem = {"path": "header.content-type", "message": f"expected application/json, got {got}"}
        return JSONResponse({"error": "unsupported_media_type", "message": JSON_ONLY, "detail": [problem]}, 415)
    where = lone_surrogate(body)
    if where is None:
        return None
    message = "a lone surrogate (a \\uD800-\\uDFFF escape that is not half of a pair) is not a character"
    detail = [{"path": where, "message": message}]
    return JSONResponse({"error": "validation_failed", "message": f"{where}: {message}", "detail": detail}, 422)


def _content_type(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:  # a loop: measurably faster here than a generator expression
        if name == b"content-type":
            return bytes(value)
    return None


async def _read_all(receive: Receive) -> list[Message]:
    messages = [await receive()]
    while messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False):
        messages.append(await receive())
    return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = iter(messages)

    async def replayed() -> Message:
        return next(pending, None) or await receive()

    return replayed
