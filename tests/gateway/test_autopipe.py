"""The Store's Redis connections: hiredis packs commands byte for byte as redis-py's Python packer does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aredis

from gateway.autopipe import AutoPipeline, hiredis_packing
from gateway.embedded import EmbeddedRedis

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "0123abcd", 2, "parley:n:1", "parley:due", "", 1_732_000_000_123, 0.25, -1.5e20, "Zoë 🚲 自行车"),
    ("SCRIPT LOAD", "return redis.call('PING')"),
    ("HSET", b"raw-bytes", "field", b"\x00\xff", "n", 12345678901234567890),
    ("SET", "k", bytearray(b"from a buffer"), "PX", memoryview(b"1500")),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_hiredis_packing_sends_the_bytes_redis_py_would(command: tuple[Any, ...]) -> None:
    python = aredis.Connection()
    pool = hiredis_packing(aredis.ConnectionPool())
    packed = pool.connection_class()
    assert type(packed) is not aredis.Connection  # the faster packer is in use (hiredis is a dependency)
    assert b"".join(packed.pack_command(*command)) == b"".join(python.pack_command(*command))


def test_an_argument_redis_cannot_take_is_refused_as_redis_py_refuses_it() -> None:
    packed = hiredis_packing(aredis.ConnectionPool()).connection_class()
    with pytest.raises(aredis.DataError):
        packed.pack_command("SET", "k", True)


def test_concurrent_commands_in_one_turn_each_get_their_own_reply(redis_server: EmbeddedRedis) -> None:
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
            await client.aclose()

    first, second, wrong, value = asyncio.run(run())
    assert (first, second, value) == (2, 5, "5")
    assert isinstance(wrong, aredis.ResponseError) and "WRONGTYPE" in str(wrong)
