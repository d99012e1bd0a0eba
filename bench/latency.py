"""Latency: what providers' answer times cost the workers (issue 18).

The other phases send to the outbox, which answers at once; real providers answer in 50 to 500 ms. Here
each first step sends on two real providers at once, email over SMTP (bench/chaos/sink.py, aiosmtpd)
and Slack's Web API (bench/slackstub.py), both stand-ins on loopback that take each message at once
and answer `delay` later: 0 (the baseline), 0.2 s (the headline) and 1 s (context). Two workers run,
started afresh with a config that sends through the stand-ins (bench/scenario.py).

- Sustained rate: N notifications made due at once; first steps/s = N / the time until the workers
  have counted both sends of every one: a step is done when the provider's answer is in, not when
  the provider got the message. `ratio` = the rate at 0.2 s / the rate at 0. A worker that keeps
  sends overlapping loses little to latency; one that waits for each batch's slowest answer before
  it takes the next batch loses most of its rate.
- Lateness at half that rate: M notifications due evenly over a window, M / window = 50 % of the
  rate measured at the same delay just before; a send's lateness is when the provider had it (the
  sink's MAIL FROM, the stand-in's request) minus its due time. At 1 s it still counts up to the
  provider's receipt, so the provider's own answer time is not in it.
- SMTP transactions open at once (MAIL FROM to the answer to DATA, from the sink's records): whether
  a worker's sends overlap at all, and how far max_sessions lets them.

The stand-ins run on the same CPUs as the workers, and a real email costs milliseconds of CPU on both
ends (composing, a new SMTP session, parsing), so on a small machine the rate at 0 is bounded by CPU,
not by waiting; the CPU per first step of the workers and of the stand-ins is reported beside the
rates so that a ratio can be read against it.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from bench import slackstub
from bench.chaos import sink
from bench.env import BenchError, Env, cpu_seconds
from bench.scenario import LATENCY_EVENT, latency_config_text, latency_templates
from bench.seed import release, release_at, seed, spread
from bench.stats import summary_ms
from gateway import metrics
from gateway.embedded import free_port
from gateway.state import keys

WORKERS = 2
DELAYS_S = (0.0, 0.2, 1.0)  # the baseline, the headline, context
MAIN_S, SLOW_S = 0.2, 1.0
CHANNELS = ("email", "slack")
SENT = {"email": metrics.send_field("email", "accepted"), "slack": metrics.send_field("slack", "delivered")}
LOAD = 0.5  # the lateness runs offer this share of the sustained rate
LEAD_S = 3.0  # between arming and the first due time
MIN_LATE, MAX_LATE = 50, 20_000  # notifications in a lateness run: enough for a p99, few enough to seed fast
# Sent through fresh workers before measuring: a worker's first sends pay for lazy imports, compiling
# the templates and the adapters' first connections, which would weigh on a quick run's few seconds.
WARMUP = 100


@dataclass(frozen=True)
class Providers:
    """The two stand-ins of one delay, where they record, and the config that sends through them."""

    delay_s: float
    sink: Path
    slack: Path
    config: Path
    pids: tuple[int, ...]  # the stand-ins' processes: they share the machine's CPUs with the workers


@dataclass(frozen=True)
class Arrival:
    nid: str
    channel: str
    at: float  # when the provider had the message (time.time())
    until: float  # when it answered


def run(env: Env, count: int, window_s: float) -> dict[str, Any]:
    templates = latency_templates(env.root / "latency-templates")
    runs = {d: at_delay(env, templates, d, count, window_s) for d in DELAYS_S}
    zero, main, slow = runs[0.0], runs[MAIN_S], runs[SLOW_S]
    late, late_slow = main["lateness"], slow["lateness"]
    return {
        "ratio": main["per_s"] / zero["per_s"], "per_s": main["per_s"], "zero_per_s": zero["per_s"],
        "per_s_1000ms": slow["per_s"], "ratio_1000ms": slow["per_s"] / zero["per_s"],
        "p50_ms": late["p50_ms"], "p99_ms": late["p99_ms"], "max_ms": late["max_ms"], "arrived": late["arrived"],
        "expected": late["expected"], "early": late["early"], "offered_per_s": late["offered_per_s"],
        "p50_ms_1000ms": late_slow["p50_ms"], "p99_ms_1000ms": late_slow["p99_ms"],
        "max_ms_1000ms": late_slow["max_ms"], "offered_per_s_1000ms": late_slow["offered_per_s"],
        "smtp_open_max": main["smtp_open_max"], "smtp_open_max_1000ms": slow["smtp_open_max"],
        "worker_cpu_us": main["worker_cpu_us"], "zero_worker_cpu_us": zero["worker_cpu_us"],
        "stand_ins_cpu_us": main["stand_ins_cpu_us"],
        "notifications": count, "workers": WORKERS, "window_s": window_s,
        "runs": {_tag(d): r for d, r in runs.items()},
    }  # fmt: skip


def at_delay(env: Env, templates: Path, delay_s: float, count: int, window_s: float) -> dict[str, Any]:
    """Fresh stand-ins and workers for one delay; the sustained rate, then (past the baseline) lateness."""
    with providers(env, templates, delay_s) as stand:
        workers = env.workers(WORKERS, config=stand.config)
        try:
            sustained(env, stand, workers, WARMUP)
            result = sustained(env, stand, workers, count)
            if delay_s > 0:
                m = min(max(round(LOAD * result["per_s"] * window_s), MIN_LATE), MAX_LATE)
                result["lateness"] = lateness(env, stand, m, window_s)
        finally:
            env.stop_all(workers)
    return result


@contextmanager
def providers(env: Env, templates: Path, delay_s: float) -> Iterator[Providers]:
    tag = _tag(delay_s)
    smtp_port = free_port()
    slack_port = free_port()
    while slack_port == smtp_port:
        slack_port = free_port()
    sink_out, slack_out = env.root / f"sink-{tag}.jsonl", env.root / f"slack-{tag}.jsonl"
    args = ["--delay", str(delay_s)]
    smtp = env.spawn(f"sink-{tag}", [sys.executable, "-m", "bench.chaos.sink", "--port", str(smtp_port), *args,
                                     "--out", str(sink_out)])  # fmt: skip
    slack = env.spawn(f"slack-{tag}", [sys.executable, "-m", "bench.slackstub", "--port", str(slack_port), *args,
                                       "--out", str(slack_out)])  # fmt: skip
    try:
        env.wait_tcp(smtp, smtp_port, f"sink-{tag}")
        env.wait_tcp(slack, slack_port, f"slack-{tag}")
        stand = Providers(delay_s, sink_out, slack_out, env.root / f"latency-{tag}.yaml", (smtp.pid, slack.pid))
        stand.config.write_text(latency_config_text(env.server.url, templates, smtp_port, slack_port))
        yield stand
    finally:
        env.stop_all([smtp, slack])


def sustained(env: Env, stand: Providers, workers: list[Popen[bytes]], count: int) -> dict[str, Any]:
    """First steps/s with all N due at once, the workers' CPU per first step, and how far sends overlapped."""
    ids = seed(env, LATENCY_EVENT, count, stand.config)
    before = _sent(env)
    cpu, stand_cpu = cpu_seconds(*(w.pid for w in workers)), cpu_seconds(*stand.pids)
    started = time.time()
    release(env.client, ids, int(started * 1000))
    _wait_sent(env, before, count, deadline=started + max(120.0, count / 10))
    elapsed = time.time() - started
    cpu, stand_cpu = cpu_seconds(*(w.pid for w in workers)) - cpu, cpu_seconds(*stand.pids) - stand_cpu
    got = arrivals(stand, ids)
    _settle(env)
    return {
        "per_s": count / elapsed, "seconds": elapsed, "worker_cpu_us": cpu * 1e6 / count,
        "stand_ins_cpu_us": stand_cpu * 1e6 / count,  # both messages of a first step, sink and Slack stand-in
        "received": {ch: len({a.nid for a in got if a.channel == ch}) for ch in CHANNELS},
        "smtp_open_max": open_at_once(a for a in got if a.channel == "email"),
        "slack_open_max": open_at_once(a for a in got if a.channel == "slack"),
    }  # fmt: skip


def lateness(env: Env, stand: Providers, count: int, window_s: float) -> dict[str, Any]:
    """Each send's arrival at its provider minus its due time, with due times spread over the window."""
    ids = seed(env, LATENCY_EVENT, count, stand.config)
    before = _sent(env)
    first_ms = int((time.time() + LEAD_S + count / 50_000) * 1000)
    schedule = spread(ids, first_ms, window_s)
    release_at(env.client, schedule)
    if time.time() * 1000 > first_ms:
        raise BenchError("latency: arming took longer than the lead time; the first sends would be late")
    _wait_sent(env, before, count, deadline=first_ms / 1000 + window_s + 120)
    due = dict(schedule)
    late = {ch: [a.at * 1000 - due[a.nid] for a in first_arrivals(arrivals(stand, ids)) if a.channel == ch]
            for ch in CHANNELS}  # fmt: skip
    both = late["email"] + late["slack"]
    _settle(env)
    return {
        **summary_ms(both), "arrived": len(both), "expected": len(CHANNELS) * count,
        "early": sum(1 for x in both if x < 0), "notifications": count, "window_s": window_s,
        "offered_per_s": count / window_s, **{f"{ch}_p99_ms": summary_ms(late[ch])["p99_ms"] for ch in CHANNELS},
    }  # fmt: skip


def _sent(env: Env) -> dict[str, int]:
    return {ch: env.counter(field) for ch, field in SENT.items()}


def _wait_sent(env: Env, before: dict[str, int], count: int, deadline: float) -> None:
    """Until the workers have counted `count` more sends on each channel (counted as each batch ends)."""
    while True:
        now = _sent(env)
        if all(now[ch] - before[ch] >= count for ch in CHANNELS):
            return
        if time.time() > deadline:
            sends = {str(k): v for k, v in env.client.hgetall(keys.METRICS).items() if str(k).startswith("sends|")}
            raise BenchError(f"latency: of {count} first steps, sent {now} (before {before}) by the deadline; {sends}")
        time.sleep(0.005)


def _settle(env: Env, timeout: float = 60.0) -> None:
    """Every job finished, then the notifications deleted: the next run starts from nothing."""
    deadline = time.monotonic() + timeout
    while env.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    env.clear()


def arrivals(stand: Providers, ids: Iterable[str]) -> list[Arrival]:
    """What the stand-ins recorded for these notifications. An SMTP transaction is open from MAIL FROM
    until the sink answers DATA, `delay` after the message arrived; a Slack request for `delay`."""
    wanted = {_message_id_form(nid): nid for nid in ids}
    found: list[Arrival] = []
    for mail in sink.read(stand.sink):
        nid = wanted.get(_nid_in(mail.message_id))
        if nid is not None:
            found.append(Arrival(nid, "email", mail.mail_at, mail.arrived_at + stand.delay_s))
    known = set(wanted.values())
    for post in slackstub.read(stand.slack):
        if post.get("notification_id") in known:
            at = float(post["received_at"])
            found.append(Arrival(str(post["notification_id"]), "slack", at, at + stand.delay_s))
    return found


def first_arrivals(found: Iterable[Arrival]) -> list[Arrival]:
    """The first arrival of each notification's message per channel (a retried send may arrive twice)."""
    first: dict[tuple[str, str], Arrival] = {}
    for a in found:
        key = (a.nid, a.channel)
        if key not in first or a.at < first[key].at:
            first[key] = a
    return list(first.values())


def open_at_once(found: Iterable[Arrival]) -> int:
    """The most intervals [at, until) open at one moment (an end sorts before a start at the same time)."""
    edges = sorted(e for a in found for e in ((a.at, 1), (a.until, -1)))
    most = running = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def _message_id_form(nid: str) -> str:
    """The notification id as it appears in its Message-ID: only dot-atom characters, others `-`
    (channels/email/channel.py message_id: `<parley.{notification}.{attempt}@{domain}>`)."""
    return re.sub(r"[^A-Za-z0-9.\-]", "-", nid)


def _nid_in(message_id: str) -> str:
    local = message_id.strip().strip("<>").partition("@")[0]
    prefix, _, rest = local.partition(".")
    return rest.partition(".")[0] if prefix == "parley" else ""


def _tag(delay_s: float) -> str:
    return f"{round(delay_s * 1000)}ms"
