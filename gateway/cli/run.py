"""`parley up`, `parley serve` and `parley worker`."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis
import uvicorn
from rq import SimpleWorker

from channels.common import ProviderConfigError
from gateway.config import DEV_KEY, PUBLIC_URL_NEEDED, Settings, load_settings
from gateway.delivery.worker import Timer, install, queue_for, wait_for_redis
from gateway.embedded import EmbeddedRedis, die_with_parent
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state.connection import sync_client
from gateway.wiring import channels_for, runtime_for, slack_updater_for, store_for, telephony_for
from rules.problems import RulesError

log = logging.getLogger("parley")
PARENT_ENV = "PARLEY_UP_PID"  # set by `parley up` for its worker


def register(commands: Any) -> None:
    up = commands.add_parser("up", help="run everything for development: API, a worker and (if no REDIS_URL) Redis")
    _common(up)
    up.set_defaults(handler=run_up)
    serve = commands.add_parser("serve", help="run the HTTP API (production)")
    _common(serve)
    serve.set_defaults(handler=run_serve)
    worker = commands.add_parser("worker", help="run a worker: the timer and RQ jobs (production)")
    worker.add_argument("--config", type=Path, default=Path("config.yaml"))
    worker.set_defaults(handler=run_worker)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: server.port, 8080)")


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _settings(path: Path, *, dev_key: bool) -> Settings | None:
    try:
        return load_settings(path, dev_key=dev_key)
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
    return None


def _serve(settings: Settings, url: str, host: str | None, port: int | None) -> int:
    holder = RulesHolder(settings)
    problems = holder.reload()
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print("parley: the rules have problems; not starting", file=sys.stderr)
        return 1
    store = store_for(settings, url)
    try:
        registry = channels_for(settings, store)
    except ProviderConfigError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    holder.listen_for_hangup()
    app = create_app(
        settings, store, holder, telephony=telephony_for(registry), slack_acknowledged=slack_updater_for(registry)
    )
    _freeze_startup_heap()
    # The asyncio loop, not uvloop: under 64 busy connections uvloop served ~2 % of requests 150-600 ms
    # late (python -m bench, ingest; the same on a bare endpoint); httptools parses either way.
    # log_config=None: uvicorn's lines (the access log too) go through Parley's logging set-up, one format
    # for every line and no terminal colours; uvicorn's own access formatter copied every record to colour
    # it, ~8 % of the API's CPU per request.
    uvicorn.run(app, host=host or settings.server.host, port=port or settings.server.port, log_level="info",
                loop="asyncio", log_config=None, access_log=settings.server.access_log)  # fmt: skip
    return 0


YOUNG_GC_THRESHOLD = 20_000


def _freeze_startup_heap() -> None:
    """Take what startup loaded (libraries, SDKs, settings, rules: a few hundred thousand objects that
    live as long as the process) out of the cyclic collector's view. Otherwise every full collection
    walks them all: under load that was a 55-60 ms pause every second or so in the API, the whole
    of its p99 latency (docs/benchmarks.md).

    The youngest generation is also collected less often: Python's default (every 700 net container
    allocations) ran ~56 collections per thousand notifications in a worker, ~14 µs of CPU per
    notification, although almost everything a request or a step allocates is freed by reference
    counting; the few cycles (tracebacks, finished tasks) wait a little longer to be reclaimed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


def production_settings(args: argparse.Namespace, command: str) -> tuple[Settings, str] | None:
    """Settings for `serve` and `worker`: no development key, and a Redis they are told about."""
    _logging()
    settings = _settings(args.config, dev_key=False)
    if settings is None:
        return None
    if not settings.redis_url:
        print(f"parley {command}: set REDIS_URL (or redis.url in the config)", file=sys.stderr)
        return None
    return settings, settings.redis_url


def run_serve(args: argparse.Namespace) -> int:
    found = production_settings(args, "serve")
    if found is None:
        return 1
    settings, url = found
    if not settings.tenants:
        print(
            "parley serve: no tenants configured; every call would be refused (see docs/deployment.md)", file=sys.stderr
        )
        return 1
    if settings.public_url_missing:  # signatures would be checked against whatever Host a request names
        print(f"parley serve: {PUBLIC_URL_NEEDED}; not starting", file=sys.stderr)
        return 1
    return _serve(settings, url, args.host, args.port)


def run_worker(args: argparse.Namespace) -> int:
    parent = os.environ.get(PARENT_ENV)
    if parent:  # started by `parley up`: end with it
        die_with_parent()
        if str(os.getppid()) != parent:  # it died before the request above took effect
            return 0
    found = production_settings(args, "worker")
    if found is None:
        return 1
    settings, url = found
    try:
        runtime = runtime_for(settings, url)  # builds every provider now: a missing secret stops here
        sends = install(runtime, settings.in_flight)
    except ProviderConfigError as exc:
        print(f"parley worker: {exc}", file=sys.stderr)
        return 1
    timer_client = sync_client(url)  # a plain, Sentinel or Cluster URL
    queue_url = settings.redis_queue_url or url  # RQ's queue: never on a cluster (gateway/config.py)
    wait_for_redis(timer_client)
    _freeze_startup_heap()
    lease_ms = int(settings.lease.total_seconds() * 1000)
    timer = Timer(timer_client, queue_for(sync_client(queue_url)), lease_ms=lease_ms, shards=settings.redis_shards)
    timer.start()
    # RQ sets a long socket timeout on its own connection pool for its blocking pop; it must
    # not share a pool whose connections were opened with the default 5 s timeout.
    rq_client = sync_client(queue_url)
    log.info("worker started (timer + RQ queue %r)", queue_for(rq_client).name)
    _work_through_outages(rq_client)
    timer.stop()
    # What RQ's jobs handed over is still in flight: let it finish within its lease (the next lease would
    # otherwise find attempts claimed and unrecorded, and send them again as `unknown` tries).
    if not sends.stop(timeout=settings.lease.total_seconds()):
        log.warning("worker stopped with sends in flight; their leases give them to another worker")
    return 0


def _work_through_outages(client: redis.Redis) -> None:
    """Run RQ's worker until it stops cleanly (SIGTERM, SIGINT). RQ quits on a Redis connection error
    (its own bookkeeping raises, 'unhandled exception, quitting'); escalations would stop while the
    API kept answering. So wait for Redis, with backoff and for as long as it takes, and start again:
    the timer thread (Timer.run_forever) rides out the same outage on its own."""
    while True:
        try:
            SimpleWorker([queue_for(client)], connection=client).work(logging_level="WARNING")
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("Redis unavailable (%s); the worker waits for it and carries on", exc)
            client.connection_pool.disconnect()  # connections opened before a restart fail once more
            wait_for_redis(client, seconds=None)
            log.info("Redis is back; the worker carries on")


def run_up(args: argparse.Namespace) -> int:
    _logging()
    settings = _settings(args.config, dev_key=True)
    if settings is None:
        return 1
    server = None
    url = settings.redis_url
    if not url:
        server = EmbeddedRedis(settings.data_dir / "redis", owned=True).start()
        url = server.url
        log.info("embedded Redis (Valkey) on %s, data in %s", url, server.data_dir)
    # The worker asks Linux for SIGTERM when `parley up` dies, even by SIGKILL (run_worker).
    env = {**os.environ, "REDIS_URL": url, PARENT_ENV: str(os.getpid())}
    worker = subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker", "--config", str(args.config)], env=env)
    host, port = args.host or settings.server.host, args.port or settings.server.port
    if "dev" in settings.tenants and settings.tenant_for_key(DEV_KEY):
        log.warning(
            "development key: tenant 'dev' accepts 'Authorization: Bearer %s' (configure tenants for real use)", DEV_KEY
        )
    if settings.public_url_missing:
        log.warning("!!! %s: Twilio's signatures are checked against each request's own URL (development only)",
                    PUBLIC_URL_NEEDED)  # fmt: skip
    log.info("Parley on http://%s:%s (API docs at /docs)", host, port)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into an exit so the
    # worker and the embedded Redis below are stopped instead of left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return _serve(settings, url, host, port)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        if server:
            server.stop()
