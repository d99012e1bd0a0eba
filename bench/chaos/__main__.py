"""`python -m bench.chaos`: Parley under faults (worker, API and Redis kills), checked end to end.

python -m bench.chaos                  # 3000 notifications at 20/s, 9 faults (about 5 minutes)
python -m bench.chaos --quick          # 300 notifications, one fault of each kind (under a minute)
python -m bench.chaos --seed 7 --json chaos.json --keep

Exit status 1 when a notification was lost, a message was sent after an acknowledged stop, a duplicate
is hidden from the API, a send the API shows never arrived, or a worker is dead at the end; 2 when the
run itself could not be done; 130 when interrupted. docs/reliability.md describes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.chaos.cluster import ChaosError
from bench.chaos.result import table
from bench.chaos.run import run
from bench.chaos.settings import FAULT_KINDS, QUICK, Options


def parse(argv: list[str] | None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 notifications, one fault of each kind")
    parser.add_argument(
        "--seed", type=int, default=1, help="chooses the faults' moments and targets, and the responses"
    )
    parser.add_argument("--count", type=int, help="notifications to post")
    parser.add_argument("--rate", type=float, help="notifications per second")
    parser.add_argument("--faults", help=f"comma-separated, repeated as wanted: {', '.join(FAULT_KINDS)}")
    parser.add_argument("--lease", type=int, help="worker.lease in seconds (default 60, Parley's default)")
    parser.add_argument("--smtp-delay", type=float, help="seconds the SMTP sink takes to answer each message (0.2)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (config, logs, raw records)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Options()
    changes: dict[str, object] = {"seed": args.seed, "keep": args.keep}
    for name, value in (
        ("count", args.count),
        ("rate", args.rate),
        ("lease_s", args.lease),
        ("smtp_delay_s", args.smtp_delay),
    ):
        if value is not None:
            changes[name] = value
    if args.faults is not None:
        faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
        unknown = sorted(set(faults) - set(FAULT_KINDS))
        if unknown:
            parser.error(f"unknown fault(s): {', '.join(unknown)}")
        changes["faults"] = faults
    return dataclasses.replace(base, **changes), args.json  # type: ignore[arg-type]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop the run and every process it started (once; the clean-up has timeouts)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run(options)
    except KeyboardInterrupt:
        print("python -m bench.chaos: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except ChaosError as exc:
        print(f"python -m bench.chaos: {exc}", file=sys.stderr)
        return 2
    print(table(result))
    if options.keep:
        print(f"\nconfig, logs and raw records in {result.root}")
    if json_path is not None:
        result.write_json(json_path)
    return 1 if result.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
