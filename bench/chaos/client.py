"""The load client: `python -m bench.chaos.client PLAN OUT`, a process of its own like a real backend.

It posts `count` intents at `rate` per second, round-robin to the API processes, each with an
Idempotency-Key, and answers a seeded share of them (`POST /v1/notifications/{id}/events` for even
ones, `POST /v1/events` by correlation key for odd ones) at a random moment after acceptance. Like a
real client it tries again, with the same key and on the other API process, after a 5xx, a 429, a
connection error or a timeout, for up to RETRY_FOR_S; what it could not get done is an error. It
writes what happened, with the moment of every acceptance and acknowledgement, to OUT as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.chaos.settings import KEY_ENV, correlation_key, idempotency_key, intent

RETRY_FOR_S = 120.0
REQUEST_TIMEOUT_S = 10.0
RETRY = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Plan:
    apis: list[str]  # base URLs
    count: int
    rate: float
    seed: int
    stop_fraction: float
    stop_window_s: float
    start_at: float  # time.time() of the first post


@dataclass
class Reply:
    status: int  # 0: no answer (connection errors or timeouts to the end)
    body: Any
    tries: int


@dataclass
class Tally:
    notifications: list[dict[str, Any]] = field(default_factory=list)
    stops: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)  # every answer by status ("none": no answer)
    started_at: float = 0.0
    ended_at: float = 0.0


async def request(base: str, method: str, path: str, body: Any, key: str, extra: dict[str, str]) -> tuple[int, Any]:
    """One HTTP/1.1 request on a connection of its own: (status, JSON body or the text)."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}", "Content-Type: application/json",
                f"Authorization: Bearer {key}", f"Content-Length: {len(data)}", "Connection: close",
                *(f"{k}: {v}" for k, v in extra.items())]  # fmt: skip
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next((int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")), None)
        raw = await (reader.readexactly(length) if length is not None else reader.read())
    finally:
        writer.close()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


class Client:
    def __init__(self, plan: Plan, key: str) -> None:
        self.plan, self.key = plan, key
        self.tally = Tally()

    async def call(self, first: int, method: str, path: str, body: Any, extra: dict[str, str]) -> Reply:
        """Until a 2xx, an answer not worth repeating, or RETRY_FOR_S; each try on the next API process."""
        deadline, pause, tries, status, payload = time.monotonic() + RETRY_FOR_S, 0.1, 0, 0, None
        while True:
            base = self.plan.apis[(first + tries) % len(self.plan.apis)]
            tries += 1
            try:
                status, payload = await asyncio.wait_for(
                    request(base, method, path, body, self.key, extra), REQUEST_TIMEOUT_S
                )
            except (OSError, EOFError, ValueError, IndexError, TimeoutError):
                status, payload = 0, None
            name = str(status) if status else "none"
            self.tally.answers[name] = self.tally.answers.get(name, 0) + 1
            if 200 <= status < 300 or (status and status not in RETRY) or time.monotonic() > deadline:
                return Reply(status, payload, tries)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def notify(self, i: int, stop_after: float | None) -> None:
        reply = await self.call(i, "POST", "/v1/notifications", intent(i), {"Idempotency-Key": idempotency_key(i)})
        if not 200 <= reply.status < 300 or not isinstance(reply.body, dict):
            self.tally.errors.append({"what": "notify", "i": i, "status": reply.status, "body": reply.body})
            return
        accepted = time.time()
        nid = str(reply.body["id"])
        self.tally.notifications.append({"i": i, "id": nid, "accepted_at": accepted, "status": reply.status,
                                         "tries": reply.tries})  # fmt: skip
        if stop_after is not None:
            await asyncio.sleep(max(accepted + stop_after - time.time(), 0.0))
            await self.stop(i, nid)

    async def stop(self, i: int, nid: str) -> None:
        by_id = i % 2 == 0
        path = f"/v1/notifications/{nid}/events" if by_id else "/v1/events"
        body = {"type": "responded"} if by_id else {"type": "responded", "correlation_key": correlation_key(i)}
        requested = time.time()
        reply = await self.call(i, "POST", path, body, {})
        acked = time.time()
        if not 200 <= reply.status < 300 or not isinstance(reply.body, dict):
            self.tally.errors.append({"what": "stop", "i": i, "id": nid, "status": reply.status, "body": reply.body})
            return
        result = reply.body.get("result") if by_id else next((k for k in ("stopped", "recorded", "inactive")
                                                               if nid in reply.body.get(k, [])), "not_listed")  # fmt: skip
        self.tally.stops.append({"i": i, "id": nid, "how": "id" if by_id else "correlation_key",
                                 "requested_at": requested, "acked_at": acked, "result": result,
                                 "tries": reply.tries})  # fmt: skip

    async def run(self) -> Tally:
        rnd = random.Random(self.plan.seed)
        answers = [rnd.uniform(0, self.plan.stop_window_s) if rnd.random() < self.plan.stop_fraction else None
                   for _ in range(self.plan.count)]  # fmt: skip
        await asyncio.sleep(max(self.plan.start_at - time.time(), 0.0))
        self.tally.started_at = start = time.time()
        tasks = []
        for i, stop_after in enumerate(answers):
            await asyncio.sleep(max(start + i / self.plan.rate - time.time(), 0.0))
            tasks.append(asyncio.create_task(self.notify(i, stop_after)))
        await asyncio.gather(*tasks)
        self.tally.ended_at = time.time()
        return self.tally


def main(argv: list[str]) -> int:
    plan = Plan(**json.loads(Path(argv[0]).read_text()))
    tally = asyncio.run(Client(plan, os.environ[KEY_ENV]).run())
    out = Path(argv[1])
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(tally)))
    partial.replace(out)  # the harness reads OUT only once it is whole
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
