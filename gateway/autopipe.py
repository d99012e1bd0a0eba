"""Auto-pipelining: commands that concurrent tasks issue in one event-loop turn go to Redis as one pipeline.

A worker runs a batch of notifications at once and the API serves many requests at once; each task
awaits its own commands. Sent one by one, every command costs a socket write, a read and redis-py's
per-call work (about 100 µs of CPU, measured by `python -m bench`), which made Redis round trips most
of a worker's time. Here the first command of a turn schedules a flush for the end of the turn and the
others join it: one write, one read, one parse loop for all of them.

Nothing about ordering changes: each caller still awaits its reply before its next command, so one
notification's commands run in the order they were written; commands of different tasks were never
ordered relative to each other. Each command (a script, mostly) is still atomic on its own; the
pipeline is not a transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import redis.asyncio as aredis
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

REPLY_TIMEOUT_S = 5.0  # redis-py's default socket timeout, here for a whole pipeline


class AutoPipeline:
    """Give it a client without a socket timeout (`Store.connect` does): it bounds each pipeline as a
    whole, where redis-py would start a timer for every reply (8 % of a worker's CPU per notification)."""

    def __init__(self, client: aredis.Redis, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.client = client
        self.timeout = timeout
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def execute(self, *args: Any) -> Any:
        """Run one command (with redis-py's reply conversion for it) in this turn's pipeline."""
        loop = asyncio.get_running_loop()
        if self._pending and self._loop is not loop:  # a second event loop on one Store: no sharing
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            self._loop = loop
            loop.call_soon(self._flush)
        self._pending.append((args, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                if len(batch) == 1:
                    replies: list[Any] = [await _single(self.client, batch[0][0])]
                else:
                    pipe = self.client.pipeline(transaction=False)
                    for args, _ in batch:
                        pipe.execute_command(*args)
                    replies = await pipe.execute(raise_on_error=False)
        except TimeoutError:  # redis-py closed the connection mid-read; callers see what they would have
            failure = aredis.TimeoutError(f"no reply from Redis within {self.timeout} s")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # the connection failed: every caller sees it, as it would have alone
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller was cancelled; the command ran anyway, as it would have
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


async def _single(client: aredis.Redis, args: tuple[Any, ...]) -> Any:
    try:
        return await client.execute_command(*args)  # type: ignore[no-untyped-call]
    except Exception as exc:  # a reply error belongs to the caller, like a pipeline's would
        return exc


# redis-py's asyncio connections pack commands in Python (its sync ones use hiredis): ~35 µs for a
# script call with a notification's fields against ~10 µs, 6 % of the API's CPU per intent.
_HIREDIS = HiredisRespSerializer()


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " not in args[0]:  # not "SCRIPT LOAD", which redis-py splits
            try:
                return [hiredis.pack_command(args)]
            except TypeError:  # a bytearray or memoryview (redis-py's serializer copies them) or a bad type
                pass
        return _HIREDIS.pack(*args)  # type: ignore[no-any-return]


class _Connection(_HiredisPacking, aredis.Connection):
    pass


class _SSLConnection(_HiredisPacking, aredis.SSLConnection):
    pass


class _UnixConnection(_HiredisPacking, aredis.UnixDomainSocketConnection):
    pass


_PACKING: dict[type[Any], type[Any]] = {
    aredis.Connection: _Connection,
    aredis.SSLConnection: _SSLConnection,
    aredis.UnixDomainSocketConnection: _UnixConnection,
}


def hiredis_packing(pool: aredis.ConnectionPool) -> aredis.ConnectionPool:
    """Have the pool's connections pack commands with hiredis (the same bytes; checked by the tests)."""
    if HIREDIS_AVAILABLE:
        pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return pool
