"""A stand-in for Slack's Web API: `POST /api/chat.postMessage`, answered `--delay` seconds later.

`python -m bench.slackstub --port P --delay 0.2 --out FILE` takes what Parley's Slack adapter
(channels/slack/channel.py, slack_sdk's AsyncWebClient) posts and answers as Slack does,
`{"ok": true, "channel": "C123", "ts": "…"}` with a distinct `ts` each time, after `--delay`
seconds: real providers take 50 to 500 ms, and the benchmark measures what that costs a worker
(bench/latency.py). It records one JSON line per message when the request arrives, before the
delay, so that a send's lateness counts the time until the provider had it and not the provider's
own answer time: `received_at` (time.time()), and the notification and attempt the adapter's
Acknowledge button carries as its value (`{notification}|{attempt}`), with the channel and text.

Bodies are bounded (413 beyond MAX_BODY); a request without a bearer token is answered
`not_authed`, any other path or method 404 `unknown_method`, both as Slack would.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from aiohttp import web

MAX_BODY = 256 * 1024  # chat.postMessage's text is at most 40,000 characters, 50 blocks
ACK_ACTION = "parley_ack"  # the button channels/slack/channel.py adds; its value names the notification


class Stub:
    def __init__(self, out: IO[str], delay_s: float) -> None:
        self.out, self.delay_s = out, delay_s
        self._serial = itertools.count(1)

    async def post_message(self, request: web.Request) -> web.Response:
        received = time.time()
        if not request.headers.get("Authorization", "").startswith("Bearer xox"):
            return web.json_response({"ok": False, "error": "not_authed"})
        try:
            body = await _body(request)
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"})
        nid, attempt = _acknowledges(body.get("blocks"))
        record = {"received_at": received, "notification_id": nid, "attempt": attempt,
                  "channel": str(body.get("channel", "")), "text": str(body.get("text", ""))[:200]}  # fmt: skip
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        ts = f"{int(received)}.{next(self._serial):06d}"  # unique within this process, as a message's ts is
        await asyncio.sleep(self.delay_s)
        return web.json_response({"ok": True, "channel": "C123", "ts": ts})

    async def unknown(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error": "unknown_method"}, status=404)


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's arguments: JSON (how slack_sdk posts messages with blocks) or a form. Reading past
    the application's client_max_size raises 413, which aiohttp answers."""
    if request.content_type == "application/json":
        parsed = json.loads(await request.read())
        if not isinstance(parsed, dict):
            raise ValueError("not an object")
        return parsed
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


def _acknowledges(blocks: Any) -> tuple[str, str]:
    """(notification, attempt) from the Acknowledge button's value; empty strings without one.
    `blocks` comes JSON-encoded, as the Web API documents it, or as a list."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "", ""
    for block in blocks if isinstance(blocks, list) else []:
        for element in block.get("elements", []) if isinstance(block, dict) else []:
            if isinstance(element, dict) and element.get("action_id") == ACK_ACTION:
                nid, _, attempt = str(element.get("value", "")).partition("|")
                return nid, attempt
    return "", ""


def app(out: IO[str], delay_s: float) -> web.Application:
    stub = Stub(out, delay_s)
    application = web.Application(client_max_size=MAX_BODY)
    application.router.add_post("/api/chat.postMessage", stub.post_message)
    application.router.add_route("*", "/{tail:.*}", stub.unknown)
    return application


async def serve(port: int, delay_s: float, out: IO[str]) -> None:
    runner = web.AppRunner(app(out, delay_s), access_log=None)
    await runner.setup()
    # A backlog above the default 128: two workers may open a few hundred connections at once.
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, shutdown_timeout=1.0)
    await site.start()
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    print(f"slack stand-in listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stopped.wait()
    await runner.cleanup()


def read(path: Path) -> list[dict[str, Any]]:
    """What the stand-in recorded, in order of arrival (a line cut short by a kill is skipped)."""
    found: list[dict[str, Any]] = []
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slackstub")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    with args.out.open("a") as out:
        asyncio.run(serve(args.port, args.delay, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
