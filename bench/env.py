"""The benchmark's environment: a private Valkey, a config, and every process it starts, all on loopback.

Everything started here is stopped when the `Env` closes, also on Ctrl-C and errors. Child processes
run in their own session, so a Ctrl-C reaches only the benchmark, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import redis
from rq import Queue, Worker

from bench.scenario import KEY, KEY_ENV, REPO, SLACK_TOKEN, SLACK_TOKEN_ENV, config_text
from gateway.embedded import EmbeddedRedis, free_port
from gateway.state import keys

HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """Something the benchmark needs did not work; the message says what."""


class Env:
    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        self.server = EmbeddedRedis(self.root / "redis", persist=False)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.config = self.root / "config.yaml"
        self.child_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {
            KEY_ENV: KEY,
            SLACK_TOKEN_ENV: SLACK_TOKEN,  # for configs with a Slack provider (bench/latency.py)
        }
        self._client: redis.Redis | None = None
        self._worker_numbers = itertools.count()  # each worker its own log, also when others have stopped

    def __enter__(self) -> Env:
        self.server.start()
        self.config.write_text(config_text(self.server.url))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        if self._client is not None:
            self._client.close()
        self.server.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.server.url, decode_responses=True)
        return self._client

    # -- processes ------------------------------------------------------------------------

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, cwd=REPO, env=self.child_env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.root / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def serve_parley(self) -> tuple[subprocess.Popen[bytes], str]:
        """`parley serve` on a free loopback port; returns it and its base URL once /readyz says ready."""
        port = free_port()
        cmd = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config), "--host", HOST]
        proc = self.spawn("serve", [*cmd, "--port", str(port)])
        base = f"http://{HOST}:{port}"
        self.wait_http(proc, f"{base}/readyz", "serve")
        return proc, base

    def serve_bare(self) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = self.spawn("bare", [sys.executable, "-m", "bench.bare", "--host", HOST, "--port", str(port)])
        base = f"http://{HOST}:{port}"
        self.wait_http(proc, f"{base}/healthz", "bare")
        return proc, base

    def wait_http(self, proc: subprocess.Popen[bytes], url: str, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{name} did not become ready at {url}:\n{self.log_tail(name)}")
            time.sleep(0.05)

    def wait_tcp(self, proc: subprocess.Popen[bytes], port: int, name: str, timeout: float = 30.0) -> None:
        """Until something accepts connections on the loopback port (a server that speaks first, as SMTP
        does, or one without a health endpoint)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2):
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{name} did not listen on {HOST}:{port}:\n{self.log_tail(name)}")
            time.sleep(0.05)

    def workers(self, count: int, timeout: float = 30.0, config: Path | None = None) -> list[subprocess.Popen[bytes]]:
        """Start `count` more `parley worker` processes (with `config`, else the benchmark's config);
        return once RQ lists them all."""
        queue = Queue(keys.QUEUE, connection=redis.Redis.from_url(self.server.url))
        before = Worker.count(queue=queue)
        cmd = [sys.executable, "-m", "gateway.cli", "worker", "--config", str(config or self.config)]
        names = [f"worker-{next(self._worker_numbers)}" for _ in range(count)]
        started = [self.spawn(name, cmd) for name in names]
        deadline = time.monotonic() + timeout
        while Worker.count(queue=queue) < before + count:
            if any(p.poll() is not None for p in started) or time.monotonic() > deadline:
                raise BenchError(f"a worker did not start:\n{self.log_tail(names[-1])}")
            time.sleep(0.05)
        queue.connection.close()
        return started

    def stop_all(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            self.stop(proc)

    # -- data -------------------------------------------------------------------------------

    def clear(self) -> None:
        """Delete Parley's keys (not RQ's: running workers keep their registration)."""
        batch: list[str] = []
        for key in self.client.scan_iter(match=keys.PREFIX + "*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def counter(self, field: str) -> int:
        return int(self.client.hget(keys.METRICS, field) or 0)

    def queue_depth(self) -> int:
        return int(self.client.llen(f"rq:queue:{keys.QUEUE}"))

    def server_version(self) -> str:
        info = self.client.info("server")
        return str(info.get("valkey_version") or info.get("redis_version") or "")


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of these processes so far (Linux /proc), 0 where unreadable."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")
