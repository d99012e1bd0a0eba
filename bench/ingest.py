"""Ingest: POST /v1/notifications with wrk at 64 connections, against a bare FastAPI endpoint in the same run."""

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


def measure(env: Env, server: subprocess.Popen[bytes], url: str, sizes: Sizes) -> tuple[Load, float]:
    """The load figures, and the server's CPU µs per request (robust to other work on the machine)."""
    run_wrk(env, url, sizes.warmup_s)  # warm up: imports, connection pools, the policy snapshot
    before = cpu_seconds(server.pid)
    load = run_wrk(env, url, sizes.ingest_s)
    return load, (cpu_seconds(server.pid) - before) * 1e6 / max(load.requests, 1)


def run(env: Env, sizes: Sizes) -> dict[str, Any]:
    wrk_path()
    proc, base = env.serve_bare()
    try:
        bare, bare_cpu = measure(env, proc, f"{base}/v1/notifications", sizes)
    finally:
        env.stop(proc)
    proc, base = env.serve_parley()
    try:
        parley, parley_cpu = measure(env, proc, f"{base}/v1/notifications", sizes)
    finally:
        env.stop(proc)
    created = int(env.client.zcard("parley:due"))
    env.clear()
    if parley.errors or bare.errors:
        raise BenchError(f"ingest: requests failed (parley {parley.errors}, bare {bare.errors}); see {env.root}")
    return {
        "ratio": parley.rps / bare.rps, "rps": parley.rps, "p50_ms": parley.p50_ms, "p99_ms": parley.p99_ms,
        "max_ms": parley.max_ms, "created": created, "connections": CONNECTIONS, "seconds": sizes.ingest_s,
        "cpu_us_per_request": parley_cpu, "cpu_ratio": bare_cpu / parley_cpu if parley_cpu else None,
        "bare": {**asdict(bare), "cpu_us_per_request": bare_cpu},
    }  # fmt: skip
