"""Dispatch: notifications whose first step reaches the outbox per second, with 1 and 2 workers,
against a plain redis-py loop moving the same number of job payloads through a Redis list; and where
a first step's CPU goes, phase by phase (bench/phases.py; `python -m bench.profile` for functions)."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import time
from typing import Any

import redis

from bench import phases
from bench.env import BenchError, Env, cpu_seconds
from bench.scenario import intent_json
from bench.seed import release, seed
from gateway import metrics

EVENT = "bench.dispatch"
SENT = metrics.send_field("email", "delivered")  # the dispatch policy's first step: one email
QUEUE, OUTBOX = "bench:queue", "bench:outbox"
SPLIT = 1000  # notifications the per-phase CPU split runs (bench/phases.py): enough for µs figures


def baseline(env: Env, count: int) -> tuple[float, float]:
    """Payloads/s of one process popping a job, decoding it and pushing a message, one round trip each;
    and its CPU µs per payload."""
    _fill(env, [QUEUE], count)
    started, ended, cpu = _loop(env.server.url, QUEUE, OUTBOX, count)
    return count / (ended - started), cpu * 1e6 / count


def parallel_baseline(env: Env, count: int, processes: int = 2) -> float:
    """Payloads/s of `processes` such loops at once, each on its own list: how far this machine scales busy
    processes at all (two vCPUs may be one core's two threads, and Valkey needs CPU too)."""
    queues = [f"{QUEUE}:{i}" for i in range(processes)]
    _fill(env, queues, count)
    with multiprocessing.get_context("fork").Pool(processes, initializer=_default_signals) as pool:
        spans = pool.starmap(_loop, [(env.server.url, q, f"{OUTBOX}:{i}", count) for i, q in enumerate(queues)])
    return processes * count / (max(end for _, end, _ in spans) - min(start for start, _, _ in spans))


def _default_signals() -> None:
    """Forked from the benchmark, a pool's processes would run its Ctrl-C handler when the pool ends them
    (SIGTERM) and each print a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fill(env: Env, queues: list[str], count: int) -> None:
    pipe = env.client.pipeline(transaction=False)
    for queue in queues:
        for i in range(count):
            pipe.lpush(queue, intent_json(i, EVENT))
    pipe.execute()


def _loop(url: str, queue: str, outbox: str, count: int) -> tuple[float, float, float]:
    """The loop itself: (start, end) wall-clock seconds and the CPU seconds it used."""
    client = redis.Redis.from_url(url)
    try:
        started, cpu = time.time(), time.process_time()
        for _ in range(count):
            popped = client.brpop([queue], timeout=5)
            if popped is None:
                raise BenchError("baseline: the queue ran dry early")
            job = json.loads(popped[1])
            message = {"to": job["recipient"]["email"], "template": "inquiry-new", "at": time.time()}
            client.lpush(outbox, json.dumps(message))
        ended, cpu = time.time(), time.process_time() - cpu
        client.delete(queue, outbox)
        return started, ended, cpu
    finally:
        client.close()


def parley(
    env: Env, workers: list[subprocess.Popen[bytes]], count: int, timeout: float = 300.0
) -> tuple[float, float, float]:
    """First steps/s: seed parked notifications, make them all due at once, wait for every send;
    the workers' CPU µs per notification, and Valkey's (what says when one Redis becomes the limit)."""
    ids = seed(env, EVENT, count)
    before = env.counter(SENT)
    cpu, valkey = cpu_seconds(*(w.pid for w in workers)), valkey_cpu(env)
    started = time.time()
    release(env.client, ids, int(started * 1000))
    while env.counter(SENT) < before + count:
        if time.time() - started > timeout:
            raise BenchError(f"dispatch: only {env.counter(SENT) - before} of {count} sent in {timeout:.0f} s")
        time.sleep(0.005)
    elapsed = time.time() - started
    cpu, valkey = cpu_seconds(*(w.pid for w in workers)) - cpu, valkey_cpu(env) - valkey
    _drain(env)
    env.clear()
    return count / elapsed, cpu * 1e6 / count, valkey * 1e6 / count


def valkey_cpu(env: Env) -> float:
    """Valkey's CPU seconds so far (INFO cpu: its main thread does the commands)."""
    info = env.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _drain(env: Env, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while env.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.05)


def run(env: Env, count: int) -> dict[str, Any]:
    """The loop runs before and after each Parley run; each is compared with the mean of the two beside it
    (the machine's speed drifts during a run: see bench/ingest.py)."""
    loops = [baseline(env, count)]
    runs: dict[int, tuple[float, float, float]] = {}
    started: list[subprocess.Popen[bytes]] = []
    try:
        for k in (1, 2):
            started += env.workers(k - len(started))
            runs[k] = parley(env, started, count)
            loops.append(baseline(env, count))
    finally:
        env.stop_all(started)
    split = phases.split(env, min(count, SPLIT))  # in this process, with no worker running
    parallel = parallel_baseline(env, count)
    around = {k: (loops[k - 1][0] + loops[k][0]) / 2 for k in runs}
    per_worker = {k: rate / k / around[k] for k, (rate, _, _) in runs.items()}
    loop_rate, loop_cpu = sum(r for r, _ in loops) / len(loops), sum(c for _, c in loops) / len(loops)
    return {
        "ratio_per_worker": min(per_worker.values()), "baseline_per_s": loop_rate, "notifications": count,
        "baseline_cpu_us": loop_cpu, "cpu_ratio": loop_cpu / runs[1][1], "baseline_runs_per_s": [r for r, _ in loops],
        # Context, not a target: two loops at once, and two workers against them rather than against one loop.
        "parallel_loops_per_s": parallel, "parallel_scaling": parallel / loop_rate,
        "ratio_per_worker_vs_parallel_loops": runs[2][0] / parallel,
        **{f"workers_{k}": {"per_s": rate, "ratio_per_worker": per_worker[k], "cpu_us": cpu, "baseline_per_s": around[k],
                            "valkey_cpu_us": valkey}
           for k, (rate, cpu, valkey) in runs.items()},
        # Where a first step's CPU goes, phase by phase, run one at a time in this process; and what a real
        # worker spends beyond the same step run as its jobs run it (RQ, the timer thread: bench/phases.py).
        "cpu_split_us": split, "cpu_outside_batches_us": runs[1][1] - split["total_batched"],
    }  # fmt: skip
