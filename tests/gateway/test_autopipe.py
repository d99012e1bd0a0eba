"""The Store's Redis connections: hiredis packs commands byte for byte as redis-py's Python packer does, and
the auto-pipeline keeps each caller's reply, error and failure its own on one connection that recovers,
whether it reads replies straight from hiredis or, where redis-py's internals moved, through redis-py."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.connection import AbstractConnection

from gateway.embedded import EmbeddedRedis
from gateway.state import autopipe, keys, lua
from gateway.state.autopipe import SUPPORTED_REDIS, AutoPipeline, hiredis_packing, why_slow_reads
from gateway.state.records import Stored
from gateway.state.store import Store

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "0123abcd", 2, "parley:n:1", "parley:due", "", 1_732_000_000_123, 0.25, -1.5e20, "Zoë 🚲 自行车"),
    ("SCRIPT LOAD", "return redis.call('PING')"),
    ("HSET", b"raw-bytes", "field", b"\x00\xff", "n", 12345678901234567890),
    ("SET", "k", bytearray(b"from a buffer"), "PX", memoryview(b"1500")),
]


def _packed(conn: AbstractConnection, command: tuple[Any, ...]) -> bytes | type[Exception]:
    try:
        return b"".join(conn.pack_command(*command))
    except aredis.DataError as exc:  # redis-py before 8.0 refuses a bytearray
        return type(exc)


@pytest.mark.parametrize("command", COMMANDS)
def test_hiredis_packing_sends_the_bytes_redis_py_would(command: tuple[Any, ...]) -> None:
    python = aredis.Connection()
    pool = hiredis_packing(aredis.ConnectionPool())
    packed = pool.connection_class()
    assert type(packed) is not aredis.Connection  # the faster packer is in use (hiredis is a dependency)
    assert _packed(packed, command) == _packed(python, command)


def test_an_argument_redis_cannot_take_is_refused_as_redis_py_refuses_it() -> None:
    packed = hiredis_packing(aredis.ConnectionPool()).connection_class()
    with pytest.raises(aredis.DataError):
        packed.pack_command("SET", "k", True)


REPO = Path(__file__).resolve().parents[2]
SLOW_READS = "read through redis-py's read_response"


@pytest.fixture(params=["hiredis", "redis-py"])
def reads(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[str]:
    """Each behaviour holds on both read paths: straight from hiredis, and redis-py's public one, which a
    release outside SUPPORTED_REDIS or one that moved the private parser gets. Each test also checks that
    the log tells which one ran."""
    monkeypatch.setattr(autopipe, "_told", False)
    if request.param == "redis-py":
        monkeypatch.setattr(autopipe, "_PARSER", None)
    caplog.set_level(logging.WARNING, logger="parley.store")
    yield request.param
    told = [r for r in caplog.get_records("call") if SLOW_READS in r.getMessage()]
    assert len(told) == (1 if request.param == "redis-py" else 0)


def test_concurrent_commands_in_one_turn_each_get_their_own_reply(redis_server: EmbeddedRedis, reads: str) -> None:
    async def run() -> list[Any]:
        pool = hiredis_packing(aredis.ConnectionPool.from_url(redis_server.url, decode_responses=True))
        client = aredis.Redis.from_pool(pool)
        pipe = AutoPipeline(client)
        try:
            await client.delete("autopipe:test")
            return list(
                await asyncio.gather(
                    pipe.execute("INCRBY", "autopipe:test", 2),
                    pipe.execute("INCRBY", "autopipe:test", 3),
                    pipe.execute("HGET", "autopipe:test", "x"),  # wrong type: only this caller fails
                    pipe.execute("GET", "autopipe:test"),
                    return_exceptions=True,
                )
            )
        finally:
            await client.delete("autopipe:test")
            await pipe.aclose()  # its connection is its own, not the pool's
            await client.aclose()

    first, second, wrong, value = asyncio.run(run())
    assert (first, second, value) == (2, 5, "5")
    assert isinstance(wrong, aredis.ResponseError) and "WRONGTYPE" in str(wrong)


def _piped(url: str, timeout: float = 5.0, name: str = "autopipe-test") -> tuple[aredis.Redis, AutoPipeline]:
    pool = aredis.ConnectionPool.from_url(url, decode_responses=True, client_name=name)
    client = aredis.Redis.from_pool(hiredis_packing(pool))
    return client, AutoPipeline(client, timeout=timeout)


def test_any_number_of_concurrent_callers_share_one_connection(redis_server: EmbeddedRedis, reads: str) -> None:
    async def run() -> tuple[int, list[Any]]:
        client, pipe = _piped(redis_server.url, name="autopipe-shared")
        observer = aredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            replies = await asyncio.gather(*(pipe.execute("ECHO", str(i)) for i in range(2000)))
            listed = await observer.execute_command("CLIENT", "LIST")  # type: ignore[no-untyped-call]
            return str(listed).count("name=autopipe-shared "), replies
        finally:
            await pipe.aclose()
            await client.aclose()
            await observer.aclose()

    connections, replies = asyncio.run(run())
    assert connections == 1
    assert replies == [str(i) for i in range(2000)]


def test_a_dropped_connection_fails_its_callers_and_the_next_command_reconnects(
    redis_server: EmbeddedRedis, reads: str
) -> None:
    async def run() -> tuple[BaseException | Any, Any]:
        client, pipe = _piped(redis_server.url)
        try:
            own = await pipe.execute("CLIENT", "ID")
            await client.execute_command("CLIENT", "KILL", "ID", own)  # type: ignore[no-untyped-call]
            lost = (await asyncio.gather(pipe.execute("PING"), return_exceptions=True))[0]
            return lost, await pipe.execute("PING")
        finally:
            await pipe.aclose()
            await client.aclose()

    lost, again = asyncio.run(run())
    assert isinstance(lost, aredis.ConnectionError)
    assert again in ("PONG", True)


def test_a_batch_without_a_reply_in_time_times_out_and_the_pipeline_recovers(
    redis_server: EmbeddedRedis, reads: str
) -> None:
    async def run() -> tuple[list[Any], Any]:
        client, pipe = _piped(redis_server.url, timeout=0.3)
        try:
            stuck = list(await asyncio.gather(
                pipe.execute("BLPOP", "autopipe:never", 5), pipe.execute("PING"), return_exceptions=True
            ))  # fmt: skip
            return stuck, await pipe.execute("ECHO", "after")
        finally:
            await pipe.aclose()
            await client.aclose()

    stuck, after = asyncio.run(run())
    assert all(isinstance(r, aredis.TimeoutError) and "within 0.3 s" in str(r) for r in stuck)
    assert after == "after"


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_notification_loads_alike_over_either_protocol(
    redis_server: EmbeddedRedis, protocol: int, reads: str
) -> None:
    """HGETALL comes back as a map (RESP3) or a flat list (RESP2, e.g. an older server or proxy)."""
    fields: dict[Any, Any] = {"tenant": "t", "status": "active", "policy": "p", "version": "v", "created_ms": "1732000000000",
              "intent": '{"event":"e","recipient":{"id":"u","email":"u@example.com"}}', "token": "4"}  # fmt: skip

    async def run() -> Stored | None:
        store = Store.connect(f"{redis_server.url}?protocol={protocol}", timedelta(days=1))
        try:
            await store.r.delete(keys.notification("proto"))
            await store.r.hset(keys.notification("proto"), mapping=fields)
            return await store.load("proto")
        finally:
            await store.r.delete(keys.notification("proto"))
            await store.close()

    stored = asyncio.run(run())
    assert stored is not None and stored.token == 4 and stored.intent.recipient.email == "u@example.com"


def test_a_resp3_push_message_between_replies_is_not_taken_for_a_reply(redis_server: EmbeddedRedis, reads: str) -> None:
    """Replies are read straight from hiredis: an out-of-band message (here a client-tracking invalidation)
    must be skipped, or every later caller on the connection would get the reply meant for the one before."""

    async def run() -> list[Any]:
        client, pipe = _piped(f"{redis_server.url}?protocol=3")
        try:
            await pipe.execute("CLIENT", "TRACKING", "ON")
            await pipe.execute("GET", "autopipe:tracked")  # now tracked: a change sends this connection a push
            await client.set("autopipe:tracked", "changed")
            await asyncio.sleep(0.05)  # the invalidation is on the wire before the next batch's replies
            return list(await asyncio.gather(pipe.execute("ECHO", "first"), pipe.execute("ECHO", "second")))
        finally:
            await client.delete("autopipe:tracked")
            await pipe.aclose()
            await client.aclose()

    assert asyncio.run(run()) == ["first", "second"]


def test_scripts_lost_by_a_restarted_redis_are_loaded_again(redis_server: EmbeddedRedis, reads: str) -> None:
    """A script's NOSCRIPT error reaches the store as redis-py's NoScriptError, which reloads it."""

    async def run() -> tuple[bool, list[bool]]:
        store = Store.connect(redis_server.url, timedelta(days=1))
        try:
            await store.r.script_flush()
            refused = await store.replace_intent("autopipe-missing", 1, "{}")  # FENCED_SET: no such notification
            sha = hashlib.sha1(lua.FENCED_SET.encode()).hexdigest()
            return refused, await store.r.script_exists(sha)
        finally:
            await store.close()

    refused, exists = asyncio.run(run())
    assert refused is False and exists == [True]


def test_the_installed_redis_py_reads_straight_from_hiredis() -> None:
    """A release inside the pin that moved the internals would only be slower in production (one log
    line); here it fails, so CI notices and the pin can be narrowed or the code follow."""
    assert why_slow_reads(redis.__version__) is None


@pytest.mark.parametrize("version", ["5.0.8", "9.0.0", "9.0.0b1", "10.1"])
def test_releases_outside_the_tested_range_take_redis_pys_path(version: str) -> None:
    reason = why_slow_reads(version)
    assert reason is not None and version in reason and SUPPORTED_REDIS in reason


@pytest.mark.parametrize("version", ["5.1.0", "8.1.0", "8.99.1"])
def test_releases_inside_the_tested_range_read_straight_from_hiredis(version: str) -> None:
    assert why_slow_reads(version) is None


def test_pyproject_pins_the_range_the_fast_path_was_tested_with() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"redis[hiredis]{SUPPORTED_REDIS}" in dependencies


@pytest.mark.slow
def test_this_module_passes_on_the_lowest_and_the_highest_supported_redis_py() -> None:
    """.ci/redis-range: this file's tests with the lowest and the newest redis-py release the pin allows."""
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run([str(REPO / ".ci" / "redis-range")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
