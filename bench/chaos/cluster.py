"""The processes of a chaos run: Redis (AOF), API processes, workers, the SMTP sink and the load client.

Every process is started from the harness's main thread, in a session of its own (a Ctrl-C reaches
only the harness, which then stops them in order), through `bench.chaos.leash` (Linux kills it if the
harness dies outright); Redis is an `EmbeddedRedis` that asks for the same (`owned`). `close` stops
every process that is still running, whatever happened, and waits for each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType

from bench.chaos.settings import KEY, KEY_ENV, Options, config_text
from bench.scenario import REPO
from gateway.embedded import EmbeddedRedis, free_port

HOST = "127.0.0.1"
WORKER_READY = b"worker started"  # parley worker's first line once it serves the queue (gateway/cli/run.py)


class ChaosError(RuntimeError):
    """Something the run needs did not start; the message says what."""


@dataclass
class Proc:
    """One supervised role (api-0, worker-1, ...): its command, and the process running it now."""

    name: str
    args: list[str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # where this run of it starts in its log (a restart appends)
    started_at: float = 0.0
    killed: bool = False  # by the harness: not an unexpected exit
    exited: bool = False  # on its own (reported once; not started again)
    pids: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Cluster:
    def __init__(self, root: Path, options: Options) -> None:
        self.root, self.options = root, options
        self.redis = EmbeddedRedis(root / "redis", persist=True, owned=True)
        self.config = root / "config.yaml"
        self.sink_port = free_port()
        self.apis = [self._proc(f"api-{n}", "serve", free_port()) for n in range(2)]
        self.workers = [self._proc(f"worker-{n}", "worker", None) for n in range(2)]
        sink = [sys.executable, "-m", "bench.chaos.sink", "--port", str(self.sink_port),
                "--delay", str(options.smtp_delay_s), "--out", str(root / "sink.jsonl")]  # fmt: skip
        self.sink = Proc("sink", sink, root / "sink.log", self.sink_port)
        self.client: Proc | None = None
        self.env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {KEY_ENV: KEY}
        self.redis_pids: list[int] = []
        self._redis_signalled: set[int] = set()

    def _proc(self, name: str, command: str, port: int | None) -> Proc:
        args = [sys.executable, "-m", "gateway.cli", command, "--config", str(self.root / "config.yaml")]
        if port is not None:
            args += ["--host", HOST, "--port", str(port)]
        return Proc(name, args, self.root / f"{name}.log", port)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- starting -----------------------------------------------------------------------------

    def start(self) -> None:
        self.start_redis()
        self.config.write_text(config_text(self.redis.url, self.sink_port, self.options.lease_s))
        self.spawn(self.sink)
        self.wait(partial(_listening, self.sink_port), self.sink, "the SMTP sink")
        for proc in self.apis:
            self.spawn(proc)
        for proc in self.workers:
            self.spawn(proc)
        for proc in self.apis:
            self.wait(partial(api_ready, proc), proc, proc.name)
        for proc in self.workers:
            self.wait(partial(worker_ready, proc), proc, proc.name)

    def start_redis(self) -> float:
        """(Re)start Redis on its port and data folder; returns the moment it answered."""
        self.redis = EmbeddedRedis(self.redis.data_dir, port=self.redis.port, persist=True, owned=True).start()
        if self.redis.process is not None:
            self.redis_pids.append(self.redis.process.pid)
        return time.time()

    def spawn(self, proc: Proc) -> None:
        proc.log_offset = proc.log.stat().st_size if proc.log.exists() else 0
        with proc.log.open("ab") as log:
            log.write(f"--- {proc.name} started by the chaos harness at {time.time():.3f}\n".encode())
            log.flush()
            proc.popen = subprocess.Popen(
                [sys.executable, "-m", "bench.chaos.leash", str(os.getpid()), *proc.args], cwd=REPO, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        proc.pids.append(proc.popen.pid)
        proc.started_at, proc.killed, proc.exited = time.time(), False, False

    def start_client(self, plan: Path, out: Path) -> Proc:
        self.client = Proc("client", [sys.executable, "-m", "bench.chaos.client", str(plan), str(out)],
                           self.root / "client.log")  # fmt: skip
        self.spawn(self.client)
        return self.client

    def wait(self, ready: Callable[[], bool], proc: Proc, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not proc.alive() or time.monotonic() > deadline:
                raise ChaosError(f"{what} did not start:\n{self.log_tail(proc)}")
            time.sleep(0.05)

    # -- faults -------------------------------------------------------------------------------

    def kill(self, proc: Proc) -> None:
        """SIGKILL, to the process and anything it started (its session), as a crash or OOM kill would."""
        if proc.popen is not None and proc.popen.poll() is None:
            proc.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()

    def signal_redis(self, how: signal.Signals, timeout: float = 10.0) -> None:
        process = self.redis.process
        assert process is not None
        self._redis_signalled.add(process.pid)
        process.send_signal(how)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # -- state --------------------------------------------------------------------------------

    def all_procs(self) -> list[Proc]:
        return [*self.apis, *self.workers, self.sink, *([self.client] if self.client else [])]

    def all_pids(self) -> list[int]:
        return [pid for proc in self.all_procs() for pid in proc.pids] + self.redis_pids

    def unexpected_exits(self) -> list[dict[str, object]]:
        """Processes that ended although the harness did not kill them, each reported once."""
        found: list[dict[str, object]] = []
        for proc in (*self.apis, *self.workers, self.sink):
            if proc.popen is not None and not proc.killed and not proc.exited and proc.popen.poll() is not None:
                proc.exited = True
                found.append({"name": proc.name, "at": time.time(), "returncode": proc.popen.returncode,
                              "log": self.log_tail(proc, 15)})  # fmt: skip
        redis = self.redis.process
        if redis is not None and redis.poll() is not None and redis.pid not in self._redis_signalled:
            self._redis_signalled.add(redis.pid)
            found.append({"name": "redis", "at": time.time(), "returncode": redis.returncode, "log": ""})
        return found

    def log_tail(self, proc: Proc, lines: int = 30) -> str:
        text = proc.log.read_bytes()[proc.log_offset :].decode(errors="replace") if proc.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop everything still running: the client, workers (SIGTERM: RQ finishes its job), APIs, the sink,
        then Redis; anything that does not stop in time, and whatever it started, gets SIGKILL."""
        for group in ([self.client] if self.client else [], self.workers, self.apis, [self.sink]):
            live = [p.popen for p in group if p.popen is not None and p.popen.poll() is None]
            for popen in live:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGTERM)
            for popen in live:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=15)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)  # the rest of its session, if anything is left
                popen.wait()
        self.redis.stop()


def api_ready(proc: Proc) -> bool:
    """/readyz answers 200: Redis answers and the rules are loaded."""
    if not proc.alive():
        return False
    with (
        contextlib.suppress(urllib.error.URLError, OSError),
        urllib.request.urlopen(proc.base + "/readyz", timeout=1) as r,
    ):
        return bool(r.status == 200)
    return False


def worker_ready(proc: Proc) -> bool:
    return proc.alive() and WORKER_READY in proc.log.read_bytes()[proc.log_offset :]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0
