"""A size limit on every request body, enforced while it streams in, before any other work.

Without it a route read a whole body before it checked anything: an unsigned 300 MB webhook cost
the API 700 MB and 22 s before its 403 (docs/security.md). Here a declared Content-Length over the
limit is answered 413 at once, without reading the body; a body sent without one (chunked) is
counted as it arrives and cut off at the limit, so at most one chunk past it is ever held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
App = Callable[[Scope, Receive, Send], Any]


class BodyTooLarge(Exception):
    """Raised into the route that was reading the body; the middleware answers 413 instead."""


def too_large(limit: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps(
        {
            "error": "payload_too_large",
            "message": f"the request body is over this path's limit of {limit} bytes",
            "detail": [{"path": "(body)", "message": f"at most {limit} bytes"}],
        },
        separators=(",", ":"),
    ).encode()
    # Connection: close: the rest of an oversized body is not worth reading to keep the connection.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    return body, headers


class BodyLimit:
    """ASGI middleware; `limit_for(path)` gives the largest body accepted on a path."""

    def __init__(self, app: App, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, limit)
            return
        if declared is not None:  # the server's HTTP parser hands on no more than the declared length
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen, over, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal seen, over
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the route's own answer to the cut-off body (a parse error) is replaced by 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass  # the route did not catch it: answered below
        except Exception:
            if not over:
                raise
        if over and not started:
            await _answer(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed Content-Length before it reaches us
    return None


async def _answer(send: Send, limit: int) -> None:
    body, headers = too_large(limit)
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
