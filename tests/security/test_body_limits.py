"""Oversized bodies on every route: answered at once, before authentication or signature work, and
without the API holding them (a real `parley serve` process, measured from outside)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.embedded import EmbeddedRedis
from tests.fixtures import KEYS
from tests.security.live import Live, serve

HUGE = 300 * 1024 * 1024  # declared, never sent whole
CHUNK = b"x" * 65536
SENT_AT_MOST = 4 * 1024 * 1024  # what a test sends before it gives up waiting


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis) -> Iterator[Live]:
    with serve(tmp_path_factory.mktemp("live"), redis_server) as server:
        yield server


def routes(live: Live) -> list[tuple[str, str]]:
    """Every operation the API publishes, path parameters filled in."""
    with urllib.request.urlopen(f"{live.base}/openapi.json", timeout=5) as response:
        schema = json.load(response)
    found = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path)) for path, ops in schema["paths"].items() for method in ops
    ]
    assert ("POST", "/webhooks/slack/interactions") in found and ("POST", "/webhooks/twilio/sms") in found
    return found


def _chunks(size: int = SENT_AT_MOST, chunked: bool = False) -> Iterator[bytes]:
    for _ in range(size // len(CHUNK)):
        yield (b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n") if chunked else CHUNK


def _status(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    assert match, answer[:200]
    return int(match.group(1))


def _head(method: str, path: str, framing: str, content_type: str = "application/json") -> str:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEYS['acme']}\r\n"
            f"Content-Type: {content_type}\r\n{framing}\r\n\r\n")  # fmt: skip


def test_a_declared_oversized_body_is_413_at_once_on_every_route(live: Live) -> None:
    before = live.rss_kib()
    for method, path in routes(live):
        answer, took = live.raw(_head(method, path, f"Content-Length: {HUGE}"), _chunks())
        assert _status(answer) == 413, (method, path, answer[:300])
        assert took < 1.0, (method, path, took)
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["error"] == "payload_too_large" and body["detail"][0]["path"] == "(body)"
    assert live.healthy()
    assert live.rss_kib() - before < 50 * 1024


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_an_oversized_chunked_body_is_cut_off_at_the_limit(live: Live, content_type: str) -> None:
    """No Content-Length to refuse up front: the body is counted as it streams and refused at the limit.
    Routes that check something else first (the key, a query parameter) may refuse before reading it."""
    before = live.rss_kib()
    for method, path in routes(live):
        if method not in ("POST", "PUT", "PATCH"):
            continue
        answer, took = live.raw(_head(method, path, "Transfer-Encoding: chunked", content_type), _chunks(chunked=True))
        assert _status(answer) in (401, 403, 413, 415, 422), (method, path, answer[:300])
        assert took < 1.0, (method, path, took)
    assert live.healthy()
    assert live.rss_kib() - before < 50 * 1024


def test_the_unsigned_slack_webhook_of_the_probe_is_refused_without_reading_it(live: Live) -> None:
    """The probe's 300 MB unsigned Slack request took 22 s and 700 MB before its 403."""
    before = live.rss_kib()
    head = _head("POST", "/webhooks/slack/interactions", f"Content-Length: {HUGE}", "application/x-www-form-urlencoded")
    answer, took = live.raw(head, _chunks(64 * 1024 * 1024))
    assert _status(answer) == 413 and took < 1.0
    assert live.rss_kib() - before < 50 * 1024


def test_bodies_within_the_limit_still_work(live: Live, tmp_path: Path) -> None:
    body = json.dumps({"event": "inquiry.created", "recipient": {"id": "s", "email": "s@example.com"},
                       "data": {"note": "x" * 60_000}}).encode()  # fmt: skip
    request = urllib.request.Request(f"{live.base}/v1/notifications", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {KEYS['acme']}",
                                              "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
