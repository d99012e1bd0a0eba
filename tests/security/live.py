"""A real `parley serve` process on loopback, for what an in-process client cannot show: memory,
time to answer a client that is still sending, and /healthz staying up meanwhile."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.embedded import EmbeddedRedis, free_port
from tests.fixtures import KEYS, REPO, SLACK_SECRET, TWILIO_TOKEN, write_config


@dataclass
class Live:
    proc: subprocess.Popen[bytes]
    port: int
    config: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def healthy(self, timeout: float = 1.0) -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.base}/healthz", timeout=timeout) as r:
            return r.status == 200
        return False

    def raw(self, head: str, body_chunks: Iterator[bytes], budget_s: float = 5.0) -> tuple[bytes, float]:
        """Send a request head, then body chunks until the server answers; (its answer, seconds taken)."""
        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            started = time.monotonic()
            conn.sendall(head.encode())
            conn.settimeout(0.01)
            answer = b""
            for chunk in body_chunks:
                if time.monotonic() - started > budget_s:
                    break
                with contextlib.suppress(OSError):  # the server may close as soon as it has answered
                    conn.sendall(chunk)
                answer += _read(conn)
                if answer:
                    break
            took = time.monotonic() - started  # when the answer began (or the budget ran out)
            conn.settimeout(0.5)  # the rest of a short answer; a kept-alive connection just stays open
            with contextlib.suppress(OSError):
                answer += conn.recv(65536)
            return answer, took


def _read(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except TimeoutError:
        return b""
    except OSError:
        return b""


@contextlib.contextmanager
def serve(folder: Path, redis_server: EmbeddedRedis, extra: str = "") -> Iterator[Live]:
    port = free_port()
    server = f"server: {{public_url: 'http://127.0.0.1:{port}'}}\n"
    config = write_config(folder, extra=server + extra)
    env = {**os.environ, "REDIS_URL": redis_server.url, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
           "SLACK_SIGNING_SECRET": SLACK_SECRET, **{f"{n.upper()}_KEY": k for n, k in KEYS.items()}}  # fmt: skip
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port", str(port)]
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    live = Live(proc, port, config)
    try:
        deadline = time.monotonic() + 30
        while not live.healthy(0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((folder / "serve.log").read_text()[-3000:])
            time.sleep(0.1)
        yield live
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
