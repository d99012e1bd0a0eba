"""The machine, the targets, the table and the JSON."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

Check = Callable[[dict[str, Any]], bool]

TARGETS: dict[str, tuple[str, Check]] = {
    "ingest": ("≥ 0.6 of bare, p99 < 50 ms", lambda r: r["ratio"] >= 0.6 and r["p99_ms"] < 50),
    "dispatch": ("≥ 0.5 of the loop per worker", lambda r: r["ratio_per_worker"] >= 0.5),
    "timers": ("p99 ≤ 250 ms, none early", lambda r: r["p99_ms"] <= 250 and r["early"] == 0 and r["missing"] == 0),
    "footprint": ("≤ 2 KiB", lambda r: r["bytes_per_notification"] <= 2048),
    # Every stop observed, or "0 late" means nothing (a renamed key once left the phase seeing none).
    "stop_race": (
        "0 late sends",
        lambda r: r["late_sends"] == 0 and r["not_stopped"] == 0 and r["stops_seen"] == r["notifications"],
    ),
    "latency": ("ratio ≥ 0.8 at 200 ms, p99 ≤ 500 ms", lambda r: r["ratio"] >= 0.8 and r["p99_ms"] <= 500),
}


def machine(valkey_version: str) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else ""
    flags = next((line.split(":", 1)[1].split() for line in _lines("/proc/cpuinfo") if line.startswith("flags")), [])
    return {
        "nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "memory_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(), "valkey": valkey_version, "wrk": wrk_version,
        "os": f"{platform.system()} {platform.release()}", "packages": packages(),
        # the flags a faster interpreter or library build may use: two "2 vCPU EPYC" machines can differ
        "cpu_flags": sorted(f for f in flags if f in CPU_FLAGS),
    }  # fmt: skip


# Libraries on the hot paths whose version changes what a step costs (issue 18: the same code measured
# twice the CPU per first step on another machine of the same kind).
PACKAGES = ("redis", "hiredis", "uvloop", "pydantic", "pydantic-core", "rq", "fastapi", "uvicorn", "jinja2")
CPU_FLAGS = {"avx", "avx2", "avx512f", "bmi2", "sse4_2", "aes", "sha_ni", "hypervisor"}


def packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def verdicts(results: dict[str, Any]) -> dict[str, bool]:
    ran = {name: r for name, r in results.items() if name in TARGETS and "error" not in r}
    return {name: TARGETS[name][1](r) for name, r in ran.items()}


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measurement, Parley, baseline, target) lines for whatever ran."""
    out: list[tuple[str, str, str, str]] = []
    r = results
    if "ratio" in r.get("ingest", {}):
        i = r["ingest"]
        out.append(("ingest req/s", f"{i['rps']:.0f} ({i['ratio']:.2f}x)", f"{i['bare']['rps']:.0f} bare", ""))
        out.append(("ingest p50 / p99", f"{i['p50_ms']:.1f} / {i['p99_ms']:.1f} ms",
                    f"{i['bare']['p50_ms']:.1f} / {i['bare']['p99_ms']:.1f} ms", TARGETS["ingest"][0]))  # fmt: skip
        out.append(("ingest CPU per request", f"{i['cpu_us_per_request']:.0f} µs",
                    f"{i['bare']['cpu_us_per_request']:.0f} µs bare", ""))  # fmt: skip
    if "ratio_per_worker" in r.get("dispatch", {}):
        d = r["dispatch"]
        for k in (1, 2):
            w = d[f"workers_{k}"]
            out.append((f"dispatch, {k} worker(s)", f"{w['per_s']:.0f}/s ({w['ratio_per_worker']:.2f}x per worker)",
                        f"{w['baseline_per_s']:.0f}/s loop", TARGETS["dispatch"][0] if k == 2 else ""))  # fmt: skip
        out.append(("two loops at once (scaling)", "", f"{d['parallel_loops_per_s']:.0f}/s "
                    f"({d['parallel_scaling']:.2f}x one)", ""))  # fmt: skip
        out.append(("dispatch CPU per notification", f"{d['workers_1']['cpu_us']:.0f} µs (1 worker), Valkey "
                    f"{d['workers_1'].get('valkey_cpu_us', 0):.0f} µs", f"{d['baseline_cpu_us']:.0f} µs loop", ""))  # fmt: skip
        if "cpu_split_us" in d:
            c = d["cpu_split_us"]
            phases = " / ".join(f"{name} {c[name]:.0f}" for name in SPLIT_PHASES)
            out.append(("first step CPU by phase, µs", phases, f"{c['total_batched']:.0f} µs as jobs run it", ""))
    if "p99_ms" in r.get("timers", {}):
        t = r["timers"]
        out.append((f"timers ({t['escalations']} in {t['window_s']:.0f} s)",
                    f"p50 {t['p50_ms']:.0f} / p99 {t['p99_ms']:.0f} / max {t['max_ms']:.0f} ms, {t['early']} early",
                    "due time", TARGETS["timers"][0]))  # fmt: skip
    if "bytes_per_notification" in r.get("footprint", {}):
        f = r["footprint"]
        out.append(("footprint per notification", f"{f['bytes_per_notification']:.0f} B waiting, "
                    f"{f['bytes_at_creation']:.0f} B created", f"{f['intent_bytes']:.0f} B intent",
                    TARGETS["footprint"][0]))  # fmt: skip
    if "late_sends" in r.get("stop_race", {}):
        s = r["stop_race"]
        out.append((f"stop race ({s['notifications']})", f"{s['late_sends']} late, {s['sends_before_stop']} before stop, {s['stops_seen']} stops seen",
                    f"ack p99 {s['ack']['p99_ms']:.0f} ms", TARGETS["stop_race"][0]))  # fmt: skip
    if "ratio" in r.get("latency", {}):
        out += latency_rows(r["latency"])
    return out


# bench/phases.py: each phase of a first step run one at a time (the sum is `total`)
SPLIT_PHASES = ("load", "plan", "render", "claim", "send", "record", "advance", "other")


def latency_rows(a: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The providers answer 0.2 s (the headline) or 1 s later; the baseline is the same run at 0 s."""
    return [
        (f"latency, first steps/s ({a['workers']} workers)", f"{a['per_s']:.0f}/s at 200 ms ({a['ratio']:.2f}x), "
         f"{a['per_s_1000ms']:.0f}/s at 1 s ({a['ratio_1000ms']:.2f}x)", f"{a['zero_per_s']:.0f}/s at 0 ms",
         TARGETS["latency"][0]),
        (f"latency lateness, 200 ms, {a['offered_per_s']:.0f}/s", f"p50 {a['p50_ms']:.0f} / p99 {a['p99_ms']:.0f} / "
         f"max {a['max_ms']:.0f} ms, {a['arrived']} of {a['expected']} arrived", "due time", ""),
        (f"latency lateness, 1 s, {a['offered_per_s_1000ms']:.0f}/s", f"p50 {a['p50_ms_1000ms']:.0f} / p99 "
         f"{a['p99_ms_1000ms']:.0f} / max {a['max_ms_1000ms']:.0f} ms to the provider's receipt", "due time", ""),
        ("latency, SMTP transactions open at once",
         f"{a['smtp_open_max']} at 200 ms, {a['smtp_open_max_1000ms']} at 1 s", "", ""),
        ("latency, CPU per first step",
         f"{a['worker_cpu_us']:.0f} µs at 200 ms, {a['zero_worker_cpu_us']:.0f} at 0 ms",
         f"{a['stand_ins_cpu_us']:.0f} µs stand-ins", ""),
    ]  # fmt: skip


def table(results: dict[str, Any]) -> str:
    met = verdicts(results)
    lines = [("measurement", "Parley", "baseline", "target"), *rows(results)]
    widths = [max(len(line[c]) for line in lines) for c in range(4)]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append("")
    text += [f"{name}: {'met' if ok else 'MISSED'}" for name, ok in met.items()]
    text += [f"{name}: error: {r['error']}" for name, r in results.items() if isinstance(r, dict) and "error" in r]
    host = results.get("machine", {})
    if host:  # what two runs' figures depend on besides the code, so that a difference can be explained
        versions = ", ".join(f"{name} {version or '-'}" for name, version in host.get("packages", {}).items())
        text.append(f"machine: {host.get('nproc')} x {host.get('cpu')}; Python {host.get('python')}, "
                    f"Valkey {host.get('valkey')}; {versions}; cpu flags {' '.join(host.get('cpu_flags', []))}")  # fmt: skip
    load = host.get("load_at_start", 0.0)
    if load > 0.5:
        text.append(f"note: the machine was busy when the run started (load average {load:.1f}); timings suffer")
    return "\n".join(text)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps({**results, "targets_met": verdicts(results)}, indent=2, default=str) + "\n")
