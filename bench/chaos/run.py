"""One chaos run, start to finish: `run(options)` returns a `ChaosResult` (the tests call it directly).

The harness itself is one thread: it starts every process from it (bench.chaos.cluster says why), then
loops every 50 ms: faults and restarts (bench.chaos.faults), a read of the outbox, a look for processes
that ended on their own. When the client is done it waits, bounded, for every notification to end,
reads everything back and stops every process (also on errors and Ctrl-C).
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis

from bench.chaos import observe
from bench.chaos.analyse import Observed, analyse
from bench.chaos.client import RETRY_FOR_S, Plan
from bench.chaos.cluster import ChaosError, Cluster
from bench.chaos.faults import Injector, schedule
from bench.chaos.result import ChaosResult
from bench.chaos.settings import Options
from bench.chaos.sink import read
from bench.env import load_average
from bench.report import machine

TICK_S = 0.05
LEAD_S = 2.0  # the client starts its load this long after it is started (its interpreter loads meanwhile)
GRACE_S = 2.0  # after the last notification ended: sends still in flight reach the sink


def run(options: Options) -> ChaosResult:
    root = options.root or Path(tempfile.mkdtemp(prefix="parley-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        with Cluster(root, options) as cluster:
            cluster.start()
            observed = _drive(cluster, options, root)
        result = analyse(observed)
        result.started_pids = cluster.all_pids()
        return result
    finally:
        if options.root is None and not options.keep:
            shutil.rmtree(root, ignore_errors=True)


def _drive(cluster: Cluster, options: Options, root: Path) -> Observed:
    begun, load = time.time(), load_average()
    rnd = random.Random(options.seed)
    injector = Injector(cluster, options, schedule(options, rnd), rnd)
    watch = observe.OutboxWatch(cluster.redis.url)
    exits: list[dict[str, Any]] = []
    try:
        tally = _load(cluster, options, root, injector, watch, exits)
        ids = [str(n["id"]) for n in tally["notifications"]]
        ended, counters, server = _settle(cluster, options, ids, watch, exits)
        bases = [p.base for p in cluster.apis if p.alive()]
        if not bases:
            raise ChaosError("no API process is left to read the notifications back")
        views = asyncio.run(observe.views(bases, ids))
        workers_alive = sum(1 for p in cluster.workers if p.alive())
        exits += cluster.unexpected_exits()
        (root / "views.json").write_text(json.dumps(views))  # raw records, for --keep
        (root / "outbox.json").write_text(json.dumps(watch.entries))
    finally:
        watch.close()
    return Observed(
        options=options, started=injector.started, ended=ended, seconds=time.time() - begun, tally=tally,
        views=views, sink=read(root / "sink.jsonl"), outbox=watch.entries, faults=injector.faults,
        metrics=counters, workers_alive=workers_alive, unexpected_exits=exits, outbox_gaps=watch.gaps,
        queue_depths=watch.queue_depths, log_counts=observe.log_counts([p.log for p in cluster.workers + cluster.apis]),
        machine={**machine(server), "redis_py": version("redis"), "load_at_start": load}, root=str(root),
    )  # fmt: skip


def _load(
    cluster: Cluster,
    options: Options,
    root: Path,
    injector: Injector,
    watch: observe.OutboxWatch,
    exits: list[dict[str, Any]],
) -> dict[str, Any]:
    """The client's load with the faults meanwhile; returns the client's record."""
    injector.started = time.time() + LEAD_S
    plan = Plan(apis=[p.base for p in cluster.apis], count=options.count, rate=options.rate, seed=options.seed,
                stop_fraction=options.stop_fraction, stop_window_s=options.stop_window_s, start_at=injector.started)  # fmt: skip
    (root / "plan.json").write_text(json.dumps(asdict(plan)))
    out = root / "client.json"
    client = cluster.start_client(root / "plan.json", out)
    deadline = injector.started + options.load_s + options.stop_window_s + RETRY_FOR_S + 60
    while client.alive() or not injector.done:
        now = time.time()
        injector.tick(now)
        watch.poll(now)
        exits += cluster.unexpected_exits()
        if now > deadline:
            raise ChaosError(f"the load did not end in time:\n{cluster.log_tail(client)}")
        time.sleep(TICK_S)
    if not out.exists():
        raise ChaosError(f"the client ended without its record:\n{cluster.log_tail(client)}")
    tally: dict[str, Any] = json.loads(out.read_text())
    return tally


def _settle(
    cluster: Cluster, options: Options, ids: list[str], watch: observe.OutboxWatch, exits: list[dict[str, Any]]
) -> tuple[float, dict[str, int], str]:
    """Until every notification ended (or `settle_s` passed); returns that moment, the /metrics counters and
    the server's version."""
    client = redis.Redis.from_url(cluster.redis.url, socket_timeout=10)
    try:
        until = time.time() + options.settle_s
        while True:
            now = time.time()
            watch.poll(now)
            exits += cluster.unexpected_exits()
            try:
                left = observe.unfinished(client, ids)
            except redis.RedisError:
                left = ids
            if not left or now > until:
                break
            time.sleep(0.5)
        ended = time.time()
        pause_until = ended + GRACE_S
        while time.time() < pause_until:
            watch.poll(time.time())
            time.sleep(TICK_S)
        watch.poll(time.time(), force=True)
        info = client.info("server")
        return ended, observe.metrics(client), str(info.get("valkey_version") or info.get("redis_version") or "")
    finally:
        client.close()
