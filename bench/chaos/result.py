"""What a chaos run found: the result the tests assert on, the table it prints and the JSON it writes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LATE_MS = 5000.0  # step lateness p99 above this is reported (the policy's waits are 3 s)


@dataclass
class FaultResult:
    kind: str
    target: str
    at_s: float  # after the load started
    down_s: float | None  # until the process was started again (Redis: answering again)
    back_s: float | None  # until the restarted API or worker was ready (Redis: every API ready again)
    next_step_s: float | None  # until a step completed (a message at the sink or in the outbox) after it
    recovery_s: float | None  # worker: next_step_s; API: back_s; Redis: the later of the two
    lateness_after: dict[str, float]  # the steps due in the RECOVERY_WINDOW_S after it
    note: str = ""


@dataclass
class ChaosResult:
    settings: dict[str, Any]
    seconds: float
    posted: int
    accepted: int
    stops_acknowledged: int
    not_found: int  # accepted, but the API answers 404 at the end
    unfinished: int  # accepted, still active when the harness stopped waiting
    stuck: int  # of those, active with no step due in the future (nothing will move them)
    client_errors: int  # requests the client gave up on (non-2xx after its retries)
    server_errors: int  # 500 answers seen, retried or not
    answers: dict[str, int]  # every answer the client got, by status ("none": no answer)
    statuses: dict[str, int]  # the notifications' statuses at the end
    sink_messages: int
    sink_duplicates: int  # copies beyond the first of one Message-ID
    hidden_duplicates: int  # of those, copies the API's delivery does not show as a try
    duplicates: list[dict[str, Any]]
    outbox_messages: int
    outbox_duplicates: int
    sends_after_stop_smtp: int  # SMTP transactions started after the stop was acknowledged
    sends_after_stop_outbox: int  # outbox entries stamped after the stop was acknowledged
    after_stop: list[dict[str, Any]]
    sends_just_before_stop: int  # sends that started in the second before a stop's acknowledgement
    stop_results: dict[str, int]  # the responses' results: stopped (was active), inactive (had ended), ...
    missing_sends: int  # the API shows sent or delivered; nothing reached the sink or the outbox
    workers_alive: int
    workers: int
    unexpected_exits: list[dict[str, Any]]
    lateness: dict[str, dict[str, float]]
    timer_lateness: dict[str, float | None]  # from /metrics' histogram: bucket bounds
    faults: list[FaultResult]
    outbox_gaps: int  # outbox reads that may have missed entries (then missing_sends may be too high)
    queue_depth_max: int  # RQ jobs waiting, the most seen
    log_counts: dict[str, int]  # marks in the workers' and APIs' logs (bench.chaos.observe.LOG_MARKS)
    interrupted_attempts: int  # deliveries whose history has an `unknown` try (sent again after a crash)
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few ids of each problem
    machine: dict[str, Any] = field(default_factory=dict)  # nproc, cpu, python, valkey, redis-py, load at start
    started_pids: list[int] = field(default_factory=list)  # every process the run started (all gone after it)
    root: str = ""

    @property
    def lost(self) -> int:
        return self.not_found + self.unfinished

    @property
    def sends_after_stop(self) -> int:
        return self.sends_after_stop_smtp + self.sends_after_stop_outbox

    def failures(self) -> list[str]:
        """What makes the run fail (the exit status of `python -m bench.chaos`)."""
        checks = [
            (self.lost, f"lost {self.lost} (not found {self.not_found}, unfinished {self.unfinished})"),
            (self.sends_after_stop, f"sends after an acknowledged stop: {self.sends_after_stop}"),
            (self.hidden_duplicates, f"hidden duplicates: {self.hidden_duplicates}"),
            (self.workers - self.workers_alive, f"workers dead at the end: {self.workers - self.workers_alive}"),
            (self.missing_sends, f"sends the API shows that never arrived: {self.missing_sends}"),
        ]
        return [text for count, text in checks if count > 0]

    def warnings(self) -> list[str]:
        """What is wrong without failing the run: late steps, duplicates (shown), missed outbox reads."""
        found: list[str] = []
        p99 = self.lateness.get("steps", {}).get("p99_ms", 0.0)
        if p99 > LATE_MS:
            found.append(f"steps were late: p99 {p99 / 1000:.1f} s after they were due (max "
                         f"{self.lateness['steps']['max_ms'] / 1000:.1f} s)")  # fmt: skip
        if self.sink_duplicates:
            found.append(f"{self.sink_duplicates} messages reached the SMTP sink twice (each shown in the API)")
        if self.outbox_gaps:
            found.append(f"{self.outbox_gaps} outbox reads may have missed entries")
        if self.stuck:
            found.append(f"{self.stuck} notifications are stuck")
        return found

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "lost": self.lost, "sends_after_stop": self.sends_after_stop,
                "failures": self.failures(), "warnings": self.warnings()}  # fmt: skip

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")


def ms(summary: dict[str, float]) -> str:
    if not summary.get("n"):
        return "-"
    return f"{summary['p50_ms']:.0f} / {summary['p99_ms']:.0f} / {summary['max_ms']:.0f} ms (n={summary['n']:.0f})"


def _seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f} s"


def _histogram(t: dict[str, float | None]) -> str:
    def bound(value: float | None) -> str:
        return f"<= {value:g} s" if value is not None else f"> {t.get('last_bound_s') or 0:g} s"

    mean = t.get("mean_s")
    return (f"p50 {bound(t.get('p50_le_s'))}, p99 {bound(t.get('p99_le_s'))}, mean "
            f"{_seconds(mean)} (n={t.get('count') or 0:.0f})")  # fmt: skip


def table(r: ChaosResult) -> str:
    s = r.settings
    rows = [
        ("load", f"{s['count']} notifications at {s['rate']:g}/s, seed {s['seed']}, lease {s['lease_s']} s, "
                 f"{len(r.faults)} faults, {r.seconds:.0f} s in all"),
        ("accepted", f"{r.accepted} of {r.posted} posted; {r.stops_acknowledged} responses acknowledged ("
                     + ", ".join(f"{k} {v}" for k, v in sorted(r.stop_results.items())) + ")"),
        ("statuses at the end", ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))),
        ("lost", f"{r.lost} (not found {r.not_found}, unfinished {r.unfinished})"),
        ("stuck", str(r.stuck)),
        ("client errors", f"{r.client_errors} unrecovered, {r.server_errors} answers 500"),
        ("client answers", ", ".join(f"{k}: {v}" for k, v in sorted(r.answers.items()))),
        ("SMTP sink", f"{r.sink_messages} messages, {r.sink_duplicates} duplicates ({r.hidden_duplicates} hidden); "
                      f"{r.interrupted_attempts} attempts show an interrupted try"),
        ("outbox", f"{r.outbox_messages} messages, {r.outbox_duplicates} duplicates"),
        ("sends after a stop", f"SMTP {r.sends_after_stop_smtp}, outbox {r.sends_after_stop_outbox} "
                               f"({r.sends_just_before_stop} sends in the second before an acknowledgement)"),
        ("sends never arrived", f"{r.missing_sends}" + (f" (outbox read gaps: {r.outbox_gaps})" if r.outbox_gaps else "")),
        ("workers alive", f"{r.workers_alive} of {r.workers}; unexpected exits: {len(r.unexpected_exits)}"),
        ("step lateness p50/p99/max", ms(r.lateness.get("steps", {}))),
        ("RQ queue, most jobs waiting", str(r.queue_depth_max)),
        ("log lines", ", ".join(f"{k} {v}" for k, v in r.log_counts.items())),
        ("email arrival - created", ms(r.lateness.get("email_arrival", {}))),
        ("timer lateness (/metrics)", _histogram(r.timer_lateness)),
    ]  # fmt: skip
    m = r.machine
    if m:
        rows.append(("machine", f"{m.get('nproc')} CPUs, Python {m.get('python')}, Valkey {m.get('valkey')}, "
                                f"redis-py {m.get('redis_py')}, load average {m.get('load_at_start')} at the start"))  # fmt: skip
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    lines += ["", "faults (t after the load started; recovery; steps due in the 15 s after: lateness p50/p99/max)"]
    for f in r.faults:
        lines.append(
            f"  t={f.at_s:6.1f} s  {f.kind:<13} {f.target:<9} recovery {_seconds(f.recovery_s):>7}"
            f"  (down {_seconds(f.down_s)}, back {_seconds(f.back_s)}, next step {_seconds(f.next_step_s)})"
            f"  {ms(f.lateness_after)}" + (f"  {f.note}" if f.note else "")
        )
    failures = r.failures()
    lines += ["", "FAIL: " + "; ".join(failures) if failures else "PASS"]
    lines += [f"note: {text}" for text in r.warnings()]
    return "\n".join(lines)
