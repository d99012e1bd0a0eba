"""Ingest: POST /v1/notifications with wrk at 64 connections, against a bare FastAPI endpoint in the same run
(two 10 s rounds each, taking turns)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from bench.env import BenchError, Env, cpu_seconds
from bench.scenario import KEY, Sizes, intent_json

CONNECTIONS = 64
THREADS = 2
WRK_HINT = "wrk is not installed; on Debian/Ubuntu: sudo apt-get install -y wrk (then run python -m bench again)"

# wrk runs this per thread: the same POST every time, and a JSON summary at the end.
LUA = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "bad_status": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.max), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError(WRK_HINT)
    return found


def run_wrk(env: Env, url: str, seconds: int) -> Load:
    script = env.root / "post.lua"
    script.write_text(LUA % {"body": intent_json(1), "key": KEY})
    args = [wrk_path(), "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "-s", str(script), url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    raw = json.loads(line.removeprefix("BENCH "))
    return Load(
        rps=raw["requests"] / (raw["duration_us"] / 1e6), p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000, requests=raw["requests"], errors=raw["bad_status"] + raw["socket_errors"],
    )  # fmt: skip


# Bare and Parley take turns, each twice (bare, Parley, Parley, bare): on a shared machine whose speed
# drifts during a run (up to 2x within minutes on the cloud VMs this was measured on), a drift that is
# roughly linear then weighs on both sides alike instead of on whichever happened to run second.
ORDER = ("bare", "parley", "parley", "bare")


def _round(env: Env, server: subprocess.Popen[bytes], url: str, seconds: int) -> tuple[Load, float]:
    """One load round and the server's CPU seconds during it (robust to other work on the machine)."""
    before = cpu_seconds(server.pid)
    load = run_wrk(env, url, seconds)
    return load, cpu_seconds(server.pid) - before


def combine(rounds: list[tuple[Load, float]]) -> tuple[Load, float]:
    """Rounds of equal length as one: their total rate, the mean p50, the worst p99 and max; CPU µs/request."""
    loads = [load for load, _ in rounds]
    requests = sum(load.requests for load in loads)
    seconds = sum(load.requests / load.rps for load in loads if load.rps)
    merged = Load(
        rps=requests / seconds if seconds else 0.0, p50_ms=sum(x.p50_ms for x in loads) / len(loads),
        p99_ms=max(x.p99_ms for x in loads), max_ms=max(x.max_ms for x in loads), requests=requests,
        errors=sum(x.errors for x in loads),
    )  # fmt: skip
    return merged, sum(cpu for _, cpu in rounds) * 1e6 / max(requests, 1)


def run(env: Env, sizes: Sizes) -> dict[str, Any]:
    wrk_path()
    servers = {"bare": env.serve_bare(), "parley": env.serve_parley()}
    rounds: dict[str, list[tuple[Load, float]]] = {"bare": [], "parley": []}
    try:
        for _, base in servers.values():  # warm up: imports, connection pools, the policy snapshot
            run_wrk(env, f"{base}/v1/notifications", sizes.warmup_s)
        for name in ORDER:
            proc, base = servers[name]
            rounds[name].append(_round(env, proc, f"{base}/v1/notifications", sizes.ingest_s))
    finally:
        for proc, _ in servers.values():
            env.stop(proc)
    (bare, bare_cpu), (parley, parley_cpu) = combine(rounds["bare"]), combine(rounds["parley"])
    created = int(env.client.zcard("parley:due"))
    env.clear()
    if parley.errors or bare.errors:
        raise BenchError(f"ingest: requests failed (parley {parley.errors}, bare {bare.errors}); see {env.root}")
    return {
        "ratio": parley.rps / bare.rps, "rps": parley.rps, "p50_ms": parley.p50_ms, "p99_ms": parley.p99_ms,
        "max_ms": parley.max_ms, "created": created, "connections": CONNECTIONS, "seconds": sizes.ingest_s,
        "rounds": list(ORDER), "cpu_us_per_request": parley_cpu, "cpu_ratio": bare_cpu / parley_cpu if parley_cpu else None,
        "bare": {**asdict(bare), "cpu_us_per_request": bare_cpu},
        "per_round": {k: [asdict(load) for load, _ in v] for k, v in rounds.items()},
    }  # fmt: skip
