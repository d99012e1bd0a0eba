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
import logging
import re
from typing import Any

import hiredis
import redis
import redis.asyncio as aredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.exceptions import ReadOnlyError

REPLY_TIMEOUT_S = 5.0  # redis-py's default socket timeout, here for a whole pipeline

# The redis-py releases whose internals the fast read path below was checked against. pyproject.toml pins
# the same range (a test compares them) and .ci/redis-range runs this module's tests on both ends of it:
# those internals can change in any release, so outside it replies take redis-py's public path.
SUPPORTED_REDIS = ">=5.1,<9"

log = logging.getLogger("parley.store")


class AutoPipeline:
    """Commands of one event-loop turn, written to Redis together on a connection of its own.

    One batch is on the wire at a time: commands issued meanwhile wait for the next, which then
    carries all of them (Redis runs commands one after another anyway, so nothing waits longer for
    the server; batches grow with the load instead of connections). The connection is redis-py's,
    taken from the client's pool settings (address, TLS, password, database, reply decoding), but
    the pipeline is ours: redis-py's Pipeline object cost ~10 µs of CPU per command in bookkeeping
    (command stack, per-reply callbacks, retries, metrics), a fifth of a worker's CPU per step.

    Replies come as Redis sends them, without redis-py's per-command conversion (HGETALL is a map
    over RESP3, a flat list over RESP2). The connection is not the pool's: `aclose` closes it. Give it
    a client without a socket timeout (`Store.connect` does): it bounds each batch as a whole, where
    redis-py would start a timer for every reply.
    """

    def __init__(self, client: aredis.Redis, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.client = client
        self.timeout = timeout
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: aredis.Connection | None = None
        self._busy = False  # a batch is on the wire
        self._sending: set[asyncio.Task[None]] = set()

    async def execute(self, *args: Any) -> Any:
        """Run one command in the next batch; a reply error is raised to this caller only."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._pending or self._busy:  # in use on another event loop right now: no sharing
                return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]
            # A connection belongs to the loop that opened it; one left on a finished loop is dropped.
            self._loop, self._conn = loop, None
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) == 1 and not self._busy:
            loop.call_soon(self._flush)
        return await future

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is asyncio.get_running_loop():
            await conn.disconnect()

    def _flush(self) -> None:
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._busy = True
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _connection(self) -> aredis.Connection:
        if self._conn is None:
            self._conn = self.client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        assert self._conn is not None
        return self._conn

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        conn = self._connection()
        demoted = False
        try:
            async with asyncio.timeout(self.timeout):
                if not conn.is_connected:
                    # connect(), not send_packed_command's own: only connect() asks the sentinels where the
                    # master is (a Sentinel-managed connection; redis-py 8 skips it when sending).
                    await conn.connect()  # type: ignore[no-untyped-call]
                # One buffer, joined once: redis-py's pack_commands regroups the pieces into buffers of a
                # set size, a third of the CPU of sending a command (a list of pieces costs a write each).
                packed = b"".join([chunk for args, _ in batch for chunk in conn.pack_command(*args)])
                await conn.send_packed_command(packed, check_health=False)
                raw = _raw_replies(conn)
                if raw is None:
                    _slow_reads(conn)
                for _, future in batch:
                    if raw is not None:
                        reply = raw[0].gets()
                        if reply is NOT_ENOUGH_DATA or isinstance(reply, _PUSH):
                            reply = await _read_raw(*raw)
                    else:
                        try:
                            reply = await conn.read_response()
                            # Not a reply, but redis-py's hiredis parser returned RESP3 pushes as one before 6.2.
                            while isinstance(reply, _PUSH):
                                reply = await conn.read_response()
                        except aredis.ResponseError as exc:  # this command's error, not the connection's
                            reply = exc
                    if isinstance(reply, ReadOnlyError):
                        demoted, reply = True, _demoted_error()
                    _settle(future, reply)
            if demoted:
                await conn.disconnect()
        except asyncio.CancelledError:
            await conn.disconnect(nowait=True)
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # the connection failed or timed out: every caller still waiting sees it
            await conn.disconnect(nowait=True)  # replies may still be on their way: never reuse it
            failure = aredis.TimeoutError(f"no reply from Redis within {self.timeout} s") if isinstance(
                exc, TimeoutError) else exc  # fmt: skip
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
        finally:
            self._busy = False
            self._flush()  # what was issued while this batch was on the wire


# Replies straight from the connection's hiredis reader. redis-py's read_response wraps each reply in
# four layers of coroutines, timeout and error bookkeeping: ~6,400 more instructions per command (14 % of
# what a command costs the auto-pipeline, callgrind; a worker sends five per step). The reader and the
# stream are redis-py's own, set up by its handshake (protocol, decoding, error classes such as
# NoScriptError), but private: neither redis-py nor hiredis offers the stream, and owning the socket
# would mean redoing redis-py's handshake (TLS, AUTH or HELLO, SELECT, client name). So they are used
# only on the releases in SUPPORTED_REDIS and only where they look as expected; anything else (a release
# outside the range, no hiredis, another parser) takes redis-py's path and says so once in the log.
_PUSH: type[Any] = getattr(hiredis, "PushNotification", type(None))  # RESP3 out-of-band messages
_HIREDIS_PARSER: type[Any] | None
try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser

    _HIREDIS_PARSER = _AsyncHiredisParser
except ImportError:  # a redis-py that moved them
    NOT_ENOUGH_DATA, _HIREDIS_PARSER = object(), None


def _release(version: str) -> tuple[int, ...]:
    found = re.search(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in found.group().split(".")) if found else ()


def why_slow_reads(version: str) -> str | None:
    """Why replies cannot be read straight from hiredis on this redis-py release; None if they can."""
    low, high = (_release(bound) for bound in SUPPORTED_REDIS.split(","))
    if not low <= _release(version) < high:
        return (
            f"redis-py {version} is outside redis{SUPPORTED_REDIS}, the releases whose internals it was checked against"
        )
    if _HIREDIS_PARSER is None:
        return f"redis-py {version} has no redis._parsers.hiredis._AsyncHiredisParser or NOT_ENOUGH_DATA"
    return None


_SLOW_REASON = why_slow_reads(redis.__version__)
_PARSER = None if _SLOW_REASON else _HIREDIS_PARSER
_told = False  # the log says once per process that replies take redis-py's path


def _raw_replies(conn: aredis.Connection) -> tuple[Any, asyncio.StreamReader] | None:
    parser = getattr(conn, "_parser", None)
    if _PARSER is None or type(parser) is not _PARSER:
        return None
    reader, stream = getattr(parser, "_reader", None), getattr(parser, "_stream", None)
    if not isinstance(reader, hiredis.Reader) or not isinstance(stream, asyncio.StreamReader):
        return None
    return reader, stream


def _slow_reads(conn: aredis.Connection) -> None:
    global _told
    if _told:
        return
    _told = True
    parser = getattr(conn, "_parser", None)
    reason = (
        _SLOW_REASON
        or f"the connection's parser ({type(parser).__name__}) is not redis-py's hiredis parser as expected"
    )
    log.warning(
        "Redis replies are read through redis-py's read_response, ~14 %% more CPU per pipelined command: %s. "
        "The fast path is tested with redis%s (pyproject.toml).",
        reason,
        SUPPORTED_REDIS,
    )


async def _read_raw(reader: Any, stream: asyncio.StreamReader) -> Any:
    """The next reply, reading from the socket as needed; a RESP3 push message is not a reply: skipped
    (redis-py's own handlers are for its connections; nothing Parley runs asks for pushes)."""
    while True:
        reply = reader.gets()
        while reply is NOT_ENOUGH_DATA:
            data = await stream.read(_READ_SIZE)
            if not data:
                raise aredis.ConnectionError("Redis closed the connection")
            reader.feed(data)
            reply = reader.gets()
        if not isinstance(reply, _PUSH):
            return reply


_READ_SIZE = 65536


def _demoted_error() -> aredis.ConnectionError:
    """A write answered READONLY: this server was the master and is a replica now (a failover). As redis-py's
    Sentinel connections do in read_response, which the fast path above skips: the caller gets a connection
    error (a 503 in the API, a retry in a worker) and the connection is closed after the batch, so the next
    one asks the sentinels for the new master (or, with a plain URL, resolves its host name again)."""
    return aredis.ConnectionError("Redis answered READONLY: the master was demoted (a failover); reconnecting")


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():  # the caller was cancelled; the command ran anyway, as it would have
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


# redis-py's asyncio connections pack commands in Python (its sync ones use hiredis): ~35 µs for a
# script call with a notification's fields against ~10 µs, 6 % of the API's CPU per intent.
class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " not in args[0]:  # not "SCRIPT LOAD", which redis-py splits
            try:
                return [hiredis.pack_command(args)]
            except TypeError:  # a bytearray or memoryview, or a type Redis cannot take
                pass
        # The rare rest goes to redis-py's own packer, whose bytes and errors these must match anyway (its
        # hiredis serializer, used here before, refused a memoryview that packer takes until redis-py 8.0).
        return super().pack_command(*args)


class _Connection(_HiredisPacking, aredis.Connection):
    pass


class _SSLConnection(_HiredisPacking, aredis.SSLConnection):
    pass


class _UnixConnection(_HiredisPacking, aredis.UnixDomainSocketConnection):
    pass


class _SentinelConnection(_HiredisPacking, SentinelManagedConnection):  # a master found through Sentinel
    pass


_PACKING: dict[type[Any], type[Any]] = {
    aredis.Connection: _Connection,
    aredis.SSLConnection: _SSLConnection,
    aredis.UnixDomainSocketConnection: _UnixConnection,
    SentinelManagedConnection: _SentinelConnection,
}


def hiredis_packing(pool: aredis.ConnectionPool) -> aredis.ConnectionPool:
    """Have the pool's connections pack commands with hiredis (the same bytes; checked by the tests)."""
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    return pool
