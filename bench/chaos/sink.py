"""The SMTP sink: a real SMTP server (aiosmtpd) that stands for an email provider.

`python -m bench.chaos.sink --port P --delay 0.2 --out FILE` records every message it receives, one
JSON line each: its Message-ID, recipients, when its SMTP transaction started (MAIL FROM) and when
the message arrived (the end of DATA). It keeps the message at once and answers 250 `--delay`
seconds later, like a provider that has taken a request and answers after its own processing: a
client that dies in between has handed the message over without learning it, the window issue 17
is about.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import IO, Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    message_id: str
    rcpt: tuple[str, ...]
    mail_at: float  # when the SMTP transaction started (MAIL FROM), time.time()
    arrived_at: float  # when the message had arrived (the end of DATA)


class Sink:
    """aiosmtpd's handler: every message is kept before it is answered."""

    def __init__(self, out: IO[str], delay_s: float) -> None:
        self.out, self.delay_s = out, delay_s
        self._mail_at: dict[int, float] = {}

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self._mail_at[id(envelope)] = time.time()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        arrived = time.time()
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content or "").encode()
        mail = message_from_bytes(raw, policy=default_policy)
        record = {
            "message_id": str(mail.get("Message-ID", "")).strip(),
            "rcpt": list(envelope.rcpt_tos),
            "mail_at": self._mail_at.pop(id(envelope), arrived),
            "arrived_at": arrived,
        }
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        await asyncio.sleep(self.delay_s)
        return "250 2.0.0 Message accepted"


def read(path: Path) -> list[Received]:
    """What the sink recorded, in order of arrival (a line cut short by a kill is skipped)."""
    found: list[Received] = []
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        try:
            raw: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        found.append(Received(raw["message_id"], tuple(raw["rcpt"]), float(raw["mail_at"]), float(raw["arrived_at"])))
    return found


async def serve(port: int, delay_s: float, out: IO[str]) -> None:
    loop = asyncio.get_running_loop()
    handler = Sink(out, delay_s)
    server = await loop.create_server(lambda: SMTP(handler, hostname="chaos-sink"), "127.0.0.1", port)
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    print(f"sink listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stopped.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.sink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    with args.out.open("a") as out:
        asyncio.run(serve(args.port, args.delay, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
