"""`python -m bench`: start what it needs on loopback, measure Parley against in-run baselines, stop everything.

python -m bench               # the full run (a few minutes)
python -m bench --quick       # a smaller version of every measurement (under a minute)
python -m bench --json out.json --only ingest,timers
python -m bench.chaos         # another command: Parley under crashes and Redis restarts (docs/reliability.md)
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import dispatch, footprint, ingest, latency, stoprace, timers
from bench.env import BenchError, Env, load_average
from bench.report import machine, table, write_json
from bench.scenario import FULL, QUICK, Sizes

Phase = Callable[[Env, Sizes], dict[str, Any]]
PHASES: dict[str, Phase] = {
    "ingest": ingest.run,
    "dispatch": lambda env, s: dispatch.run(env, s.dispatch),
    "timers": lambda env, s: timers.run(env, s.timers, s.timers_window_s),
    "footprint": lambda env, s: footprint.run(env, s.footprint),
    "stop_race": lambda env, s: stoprace.run(env, s.race, s.race_window_s),
    "latency": lambda env, s: latency.run(env, s.latency, s.latency_window_s),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smaller version of everything (under a minute)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated phases (default: {','.join(PHASES)})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (config, process logs)")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in args.phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(unknown)}")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop measuring and stop everything (once; the clean-up has its own timeouts).
    Installed for SIGINT too, so asyncio.run raises it where it happens instead of cancelling a task
    that might swallow the cancellation."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def measure(env: Env, phases: list[str], sizes: Sizes) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in phases:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            results[name] = PHASES[name](env, sizes)
        except BenchError as exc:
            results[name] = {"error": str(exc)}
            env.clear()
        print(f"   {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    if "ingest" in args.phases:
        try:
            ingest.wrk_path()
        except BenchError as exc:
            print(f"python -m bench: {exc}", file=sys.stderr)
            return 2
    sizes = QUICK if args.quick else FULL
    started, load = time.monotonic(), load_average()
    try:
        with Env(keep=args.keep) as env:
            if args.keep:
                print(f"   logs and config in {env.root}", file=sys.stderr)
            results: dict[str, Any] = {
                "quick": args.quick,
                "machine": machine(env.server_version()) | {"load_at_start": load},
            }
            results |= measure(env, args.phases, sizes)
    except KeyboardInterrupt:
        print("python -m bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    results["seconds"] = round(time.monotonic() - started, 1)
    print(table(results))
    if args.json:
        write_json(args.json, results)
    return 1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
