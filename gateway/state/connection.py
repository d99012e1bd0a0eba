"""Redis URLs into clients: the one place that reads `redis.url` (or REDIS_URL).

A plain URL (`redis://`, `rediss://`, `unix://`) goes to redis-py as it always did. A Sentinel URL

    redis+sentinel://[[user]:password@]host1:port1[,host2:port2...]/service_name[/db][?option=value&...]

names the sentinels (port 26379 where none is given) and the service they monitor; the user and password
are those of the Redis servers (the master and its replicas). Its options:

- `sentinel_username`, `sentinel_password`: when the sentinels themselves require AUTH;
- `socket_timeout`, `socket_connect_timeout`: seconds, for connections to the master. The connect timeout
  is 2 s unless given: a master whose host vanished then costs seconds, not the system's TCP timeout;
- `sentinel_timeout`: seconds a sentinel has to answer before the next one is asked (default 1).

Failover is redis-py's own (`redis.sentinel`): a connection to the master asks the sentinels for its
address whenever it (re)connects, and a connection error, or a READONLY reply from a master since demoted,
closes the connection so that the next command asks again (the auto-pipeline, which reads replies itself,
does the same: gateway/state/autopipe.py). Parley adds no failover logic of its own.

A Redis Cluster URL

    redis+cluster://[[user]:password@]host1:port1[,host2:port2...][?socket_timeout=S&socket_connect_timeout=S]

names some of the cluster's nodes (port 6379 where none is given); redis-py's cluster client learns the
rest, and follows slots as they move (MOVED, ASK). What Parley does differently on a cluster is in
gateway/state/cluster.py and keys.py; RQ's queue cannot be on a cluster (redis.queue_url).

Also here: WAIT after a write (`ReplicaWait`), for the stops the API acknowledges (redis.wait_replicas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncCluster
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from rules.durations import parse_duration

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_PORT = 26379
PLAIN_PORT = 6379
CONNECT_TIMEOUT_S = 2.0
SENTINEL_TIMEOUT_S = 1.0  # sentinels answer from memory in microseconds; one that does not is skipped
OPTIONS = ("sentinel_username", "sentinel_password", "socket_timeout", "socket_connect_timeout", "sentinel_timeout")
_SECONDS = ("socket_timeout", "socket_connect_timeout", "sentinel_timeout")
CLUSTER_OPTIONS = ("socket_timeout", "socket_connect_timeout")
_SCHEMES_TEXT = "redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    socket_timeout: float | None = None
    socket_connect_timeout: float = CONNECT_TIMEOUT_S
    sentinel_timeout: float = SENTINEL_TIMEOUT_S

    def master_options(self) -> dict[str, Any]:
        return {"db": self.db, "username": self.username, "password": self.password,
                "socket_timeout": self.socket_timeout, "socket_connect_timeout": self.socket_connect_timeout}  # fmt: skip

    def sentinel_options(self, retry: Any) -> dict[str, Any]:
        # No retries against one sentinel (redis-py 6+ retries a connection ten times by default, seconds
        # for a sentinel that is down): the next sentinel in the list is the retry.
        return {"username": self.sentinel_username, "password": self.sentinel_password, "retry": retry,
                "socket_timeout": self.sentinel_timeout, "socket_connect_timeout": self.sentinel_timeout}  # fmt: skip


@dataclass(frozen=True)
class ClusterUrl:
    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    socket_timeout: float | None = None
    socket_connect_timeout: float = CONNECT_TIMEOUT_S

    def options(self) -> dict[str, Any]:
        return {"startup_nodes": None, "username": self.username, "password": self.password,
                "socket_timeout": self.socket_timeout, "socket_connect_timeout": self.socket_connect_timeout}  # fmt: skip


def is_cluster(url: str) -> bool:
    return url.partition("://")[0].lower() == CLUSTER_SCHEME


def parse(url: str) -> SentinelUrl | ClusterUrl | None:
    """A Sentinel or Cluster URL read; None for a plain URL, after checking it as redis-py reads it. A
    ValueError says what is wrong, without repeating the URL (it may hold a password)."""
    scheme, separator, _ = url.partition("://")
    if not separator:
        raise ValueError(f"not a Redis URL: use {_SCHEMES_TEXT}")
    if scheme.lower() == SENTINEL_SCHEME:
        return _sentinel_url(url)
    if scheme.lower() == CLUSTER_SCHEME:
        return _cluster_url(url)
    if scheme.lower() not in PLAIN_SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: use {_SCHEMES_TEXT}")
    try:
        port = urlsplit(url).port  # a ValueError for a port that is not a number from 0 to 65535
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py's own reading: the query options' types
    except ValueError as exc:
        raise ValueError(f"not a valid Redis URL: {exc}") from None
    if port == 0:
        raise ValueError("not a valid Redis URL: port 0")
    return None


def _sentinel_url(url: str) -> SentinelUrl:
    parts, (user, password), hosts = _split(url, "Sentinel")
    if not hosts:
        raise ValueError("a Sentinel URL names its sentinels: redis+sentinel://host:26379[,host:26379...]/service")
    sentinels = tuple(_host(text, i, "sentinel", SENTINEL_PORT) for i, text in enumerate(hosts, 1))
    segments = [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
    if not segments or not segments[0]:
        raise ValueError("a Sentinel URL names the service the sentinels monitor: redis+sentinel://host:26379/mymaster")
    if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ValueError("after the service name a Sentinel URL has at most a database number: /mymaster/0")
    return SentinelUrl(sentinels, segments[0], int(segments[1]) if len(segments) == 2 else 0,
                       user, password, **_options(parts.query))  # fmt: skip


def _cluster_url(url: str) -> ClusterUrl:
    parts, (user, password), hosts = _split(url, "Cluster")
    if not hosts:
        raise ValueError("a Cluster URL names some of its nodes: redis+cluster://host:6379[,host:6379...]")
    if parts.path.strip("/"):
        raise ValueError("a Cluster URL has no database number: a cluster has only database 0")
    nodes = tuple(_host(text, i, "node", PLAIN_PORT) for i, text in enumerate(hosts, 1))
    return ClusterUrl(nodes, user, password, **_options(parts.query, allowed=CLUSTER_OPTIONS, what="Cluster"))


def _split(url: str, what: str) -> tuple[SplitResult, tuple[str | None, str | None], list[str]]:
    """A Sentinel or Cluster URL's parts, its user and password, and its comma-separated hosts."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a valid {what} URL: {exc}") from None
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":") if at else ("", "", "")
    return parts, (unquote(user) or None, unquote(password) or None), hostlist.split(",") if hostlist else []


def _host(text: str, number: int, what: str, default_port: int) -> tuple[str, int]:
    """`host[:port]` (`[v6]:port`) of a URL naming several hosts: the `number`-th `what`."""
    if text.startswith("["):  # an IPv6 address: [::1]:26379
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else (None if rest else "")
    else:
        host, colon, port_text = text.rpartition(":")
        host, port_text = (host, port_text) if colon else (text, "")
        port_text = port_text if port_text or not colon else None  # "host:" has no port: an error
    if not host:
        raise ValueError(f"{what} {number} has no host")
    if port_text == "":
        return unquote(host), default_port
    if port_text is None or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{what} {number} ({host}): the port must be a number from 1 to 65535")
    return unquote(host), int(port_text)


def _options(query: str, allowed: tuple[str, ...] = OPTIONS, what: str = "Sentinel") -> dict[str, Any]:
    try:
        given = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"a {what} URL's options are name=value pairs joined by &") from None
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} URL option {unknown[0]!r}: the options are {', '.join(allowed)}")
    # parse_qs has decoded the values already; the first of a repeated option counts, as in redis-py
    return {name: _seconds(name, values[0]) if name in _SECONDS else (values[0] or None)
            for name, values in given.items()}  # fmt: skip


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} is a number of seconds above zero, e.g. {name}=0.5")
    return value


# -- clients ------------------------------------------------------------------------------------


def sync_client(url: str) -> redis.Redis:
    """A client of its own with its own pool, for the worker's timer thread or RQ. On a cluster, redis-py's
    cluster client: the timer's commands name one key each, or are in a non-transactional pipeline."""
    address = parse(url)
    if address is None:
        return redis.Redis.from_url(url)
    if isinstance(address, ClusterUrl):
        nodes = [SyncClusterNode(host, port) for host, port in address.nodes]  # type: ignore[no-untyped-call]
        # Typed as the plain client its callers (the timer, wait_for_redis) take: they use only what both have.
        cluster: redis.Redis = SyncCluster(**{**address.options(), "startup_nodes": nodes})  # type: ignore[assignment]
        return cluster
    asking = address.sentinel_options(Retry(NoBackoff(), 0))
    sentinels = Sentinel(address.sentinels, sentinel_kwargs=asking)  # type: ignore[no-untyped-call]
    options = {**address.master_options(), "connection_class": _ClosingSentinelConnection}
    client: redis.Redis = sentinels.master_for(address.service, **options)  # type: ignore[no-untyped-call]
    return client


class _ClosingSentinelConnection(SentinelManagedConnection):
    """redis-py's (sync) Sentinel connection, closed when a read fails or is interrupted, as redis-py's other
    connections are. Its read_response alone keeps the connection by default (redis-py PR #4292, open), so an
    unread reply went back to the pool with it: the next command got that reply instead of its own, or, after
    SIGTERM interrupted RQ's blocking pop, waited for the pop to time out (`parley worker` did not stop)."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:  # its parameters differ between redis-py releases
        kwargs.setdefault("disconnect_on_error", True)  # PubSub passes False itself, and still gets it
        return super().read_response(*args, **kwargs)


def blocking_pool(url: str, *, max_connections: int, timeout: float, **options: Any) -> aredis.ConnectionPool:
    """An asyncio pool in which, past `max_connections`, a command waits up to `timeout` s for a free
    connection. For a plain URL its query options win over `options` (redis-py's from_url); for a
    Sentinel URL `options` win, so a caller can have a client without a socket timeout."""
    address = parse(url)
    if address is None:
        return aredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **options)
    if isinstance(address, ClusterUrl):
        raise ValueError("a Cluster URL has no single pool: use cluster_client")
    asking = address.sentinel_options(AsyncRetry(NoBackoff(), 0))
    sentinels = AsyncSentinel(address.sentinels, sentinel_kwargs=asking)  # type: ignore[no-untyped-call]
    kwargs = {**address.master_options(), **options, "max_connections": max_connections, "timeout": timeout}
    return BlockingSentinelPool(address.service, sentinels, **kwargs)  # type: ignore[no-untyped-call]


def cluster_client(url: str, *, max_connections: int) -> AsyncCluster:
    """redis-py's asyncio cluster client: a pool per node, `max_connections` each."""
    address = parse(url)
    if not isinstance(address, ClusterUrl):
        raise ValueError("not a Cluster URL")
    nodes = [AsyncClusterNode(host, port) for host, port in address.nodes]
    options = {**address.options(), "startup_nodes": nodes}
    return AsyncCluster(**options, decode_responses=True, max_connections=max_connections)


class BlockingSentinelPool(SentinelConnectionPool, aredis.BlockingConnectionPool):
    """redis-py's Sentinel pool (the master's address from the sentinels, re-asked on every connect) with
    its blocking pool's wait for a free connection: redis-py has both, but not together."""

    async def aclose(self) -> None:
        await super().aclose()
        for sentinel in self.sentinel_manager.sentinels:  # the clients that asked the sentinels
            await sentinel.aclose()


# -- WAIT -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaWait:
    """redis.wait_replicas and redis.wait_timeout: how many replicas must have a write before the API
    acknowledges it, and how long to wait for them. 0 replicas (the default): no WAIT."""

    replicas: int = 0
    timeout_ms: int = 1000


NO_WAIT = ReplicaWait()

MAX_WAIT_MS = 10_000  # a stop's answer waits this long at most: longer, and clients time out first


def wait_ms(text: str) -> int:
    """redis.wait_timeout in milliseconds: a duration (`1s`) or milliseconds (`500ms`), never 0 (to
    Redis, WAIT with 0 waits forever)."""
    digits = text.strip().removesuffix("ms")
    if text.strip().endswith("ms") and digits.isdigit():
        ms = int(digits)
    else:
        ms = int(parse_duration(text).total_seconds() * 1000)
    if not 1 <= ms <= MAX_WAIT_MS:
        raise ValueError(f"invalid wait_timeout {text!r}: from 1ms to {MAX_WAIT_MS // 1000}s")
    return ms


class NotReplicated(Exception):
    """The write was made on the master, but fewer replicas than asked had it within the timeout."""

    def __init__(self, confirmed: int, wanted: int) -> None:
        super().__init__(f"{confirmed} of {wanted} Redis replicas confirmed the write in time")
        self.confirmed, self.wanted = confirmed, wanted


async def eval_then_wait(client: aredis.Redis, script: str, keys: list[str], args: list[Any], wait: ReplicaWait) -> Any:
    """Run a Lua script, then WAIT until `wait.replicas` replicas have it: one round trip on one
    connection, as WAIT counts the writes of the connection that sends it. Not on the auto-pipeline:
    WAIT would hold its one connection, and every command of the process behind it, for up to the
    timeout. EVAL with the script's text, not EVALSHA: a master new since a failover has not loaded it,
    and a NOSCRIPT answer would have cost a WAIT of its own."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.eval(script, len(keys), *keys, *args)
        pipe.wait(wait.replicas, wait.timeout_ms)
        result, confirmed = await pipe.execute(raise_on_error=False)
    for reply in (result, confirmed):
        if isinstance(reply, Exception):
            raise reply
    if int(confirmed) < wait.replicas:
        raise NotReplicated(int(confirmed), wait.replicas)
    return result
