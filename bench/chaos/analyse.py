"""From what the client, the sink, the outbox and the API saw, to a `ChaosResult`.

Times are wall-clock seconds (time.time()) of one machine: the client's acknowledgements, the sink's
arrivals, the outbox's stamps and the API's created_at all come from the same clock.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bench.chaos.faults import REDIS_SIGNALS, Fault
from bench.chaos.result import ChaosResult, FaultResult
from bench.chaos.settings import EMAIL_ATTEMPT, STEP_WAIT_S, WORKER_KILL, Options, message_id_local
from bench.chaos.sink import Received
from bench.stats import percentile
from gateway.metrics import LATENESS_BUCKETS

RECOVERY_WINDOW_S = 15.0
CLOSE_S = 1.0  # a send this soon before a stop's acknowledgement counts as a close call
STUCK_AFTER_S = 30.0  # active, and its next step this far in the past (or none): nothing is moving it
MESSAGE_ID = re.compile(r"<(parley\.[^@]+\.(\d+\.\d+\.[a-z]+))@")
EXAMPLES = 10

View = dict[str, Any]


@dataclass
class Observed:
    options: Options
    started: float  # when the load started
    ended: float  # when the harness stopped waiting for the notifications to end
    seconds: float
    tally: dict[str, Any]  # the client's record (bench.chaos.client.Tally)
    views: dict[str, View | None]  # GET /v1/notifications/{id}; None: 404
    sink: list[Received]
    outbox: list[dict[str, Any]]
    faults: list[Fault]
    metrics: dict[str, int]
    workers_alive: int
    unexpected_exits: list[dict[str, Any]]
    outbox_gaps: int
    queue_depths: list[tuple[float, int]]
    log_counts: dict[str, int]
    machine: dict[str, Any]
    root: str


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def summary(values: list[float]) -> dict[str, float]:
    """Seconds in, milliseconds out."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000,
            "max_ms": max(values) * 1000, "min_ms": min(values) * 1000}  # fmt: skip


class Index:
    """Who is who: notification ids, Message-IDs, the views' deliveries, the outbox by notification."""

    def __init__(self, o: Observed) -> None:
        self.accepted = {str(n["id"]): n for n in o.tally["notifications"]}
        by_local = {message_id_local(nid, EMAIL_ATTEMPT).rsplit(".", 3)[0]: nid for nid in self.accepted}
        self.sink_by_id: dict[str, list[Received]] = defaultdict(list)
        self.sink_owner: dict[str, tuple[str, str]] = {}  # Message-ID -> (notification, attempt)
        self.sink_by_nid: dict[str, list[tuple[str, Received]]] = defaultdict(list)
        for m in o.sink:
            self.sink_by_id[m.message_id].append(m)
            found = MESSAGE_ID.search(m.message_id)
            if found:
                nid = by_local.get(found.group(1).rsplit(".", 3)[0], "")
                self.sink_owner[m.message_id] = (nid, found.group(2))
                self.sink_by_nid[nid].append((found.group(2), m))
        self.outbox_by_nid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in o.outbox:
            self.outbox_by_nid[str(entry.get("notification_id"))].append(entry)


def delivery(view: View | None, attempt: str) -> dict[str, Any] | None:
    if not view:
        return None
    return next((d for d in view.get("deliveries", []) if d.get("attempt") == attempt), None)


def duplicates(o: Observed, ix: Index) -> tuple[int, int, list[dict[str, Any]]]:
    """Copies of one Message-ID beyond the first, and those the API does not show: a delivery shows as
    many sends as its `tries` (or its history's entries, an `unknown` one included, when more)."""
    extra = hidden = 0
    found: list[dict[str, Any]] = []
    for mid, copies in ix.sink_by_id.items():
        if len(copies) < 2:
            continue
        nid, attempt = ix.sink_owner.get(mid, ("", ""))
        d = delivery(o.views.get(nid), attempt)
        history = (d or {}).get("history") or []
        shown = max(int((d or {}).get("tries") or 0), len(history))
        unseen = max(len(copies) - max(shown, 1), 0)
        extra, hidden = extra + len(copies) - 1, hidden + unseen
        found.append({"message_id": mid, "notification": nid, "attempt": attempt, "copies": len(copies),
                      "tries": (d or {}).get("tries"), "history": [h.get("outcome") for h in history],
                      "status": (d or {}).get("status"), "hidden": unseen,
                      "arrivals": [round(m.arrived_at - o.started, 3) for m in copies]})  # fmt: skip
    return extra, hidden, found


def after_stops(o: Observed, ix: Index) -> tuple[list[dict[str, Any]], int]:
    """Sends that started after their notification's stop was acknowledged: at the sink, an SMTP
    transaction begun later; in the outbox, an entry stamped later (stamped before its script ran, so
    such an entry was stored after the stop; one stamped just before and stored after is not counted).
    And how many sends started in the CLOSE_S before an acknowledgement: how often the race was run."""
    found: list[dict[str, Any]] = []
    close = 0
    for stop in o.tally["stops"]:
        nid, acked = str(stop["id"]), float(stop["acked_at"])
        sends = [("smtp", attempt, m.mail_at) for attempt, m in ix.sink_by_nid.get(nid, [])]
        sends += [("outbox", str(e.get("attempt")), ts(e["at"])) for e in ix.outbox_by_nid.get(nid, [])]
        for where, attempt, at in sends:
            close += acked - CLOSE_S < at <= acked
            if at > acked:
                found.append({"where": where, "notification": nid, "attempt": attempt, "stop": stop["result"],
                              "after_ms": round((at - acked) * 1000, 1), "at_s": round(at - o.started, 3)})  # fmt: skip
    return found, close


def missing_sends(o: Observed, ix: Index) -> list[str]:
    """Deliveries the API shows as sent or delivered whose message reached neither the sink nor the outbox."""
    missing: list[str] = []
    for nid, view in o.views.items():
        boxed = {str(e.get("attempt")) for e in ix.outbox_by_nid.get(nid, [])}
        for d in (view or {}).get("deliveries", []):
            if d.get("status") not in ("sent", "delivered"):
                continue
            there = d.get("provider_id") in ix.sink_by_id if d.get("channel") == "email" else d["attempt"] in boxed
            if not there:
                missing.append(f"{nid}:{d['attempt']}")
    return missing


def step_lateness(o: Observed, ix: Index) -> tuple[list[tuple[float, float]], list[float]]:
    """(due, how late) of every step that reached its provider, and email arrival - created_at.

    A step is due when the engine says: the first at created_at, each next one STEP_WAIT_S after the
    previous step's `at`. It reached its provider when its SMTP transaction started at the sink (its
    first copy) or the outbox stamped it."""
    steps: list[tuple[float, float]] = []
    arrivals: list[float] = []
    for nid, view in o.views.items():
        if not view:
            continue
        due = ts(view["created_at"])
        email = delivery(view, EMAIL_ATTEMPT)
        copies = ix.sink_by_id.get(str((email or {}).get("provider_id")), [])
        if copies:
            steps.append((due, copies[0].mail_at - due))
            arrivals.append(copies[0].arrived_at - due)
        boxed = {str(e.get("attempt")): ts(e["at"]) for e in ix.outbox_by_nid.get(nid, [])}
        previous = email
        for attempt in ("2.0.sms", "4.0.slack"):
            d = delivery(view, attempt)
            if previous is None or d is None:
                break
            due = ts(previous["at"]) + STEP_WAIT_S
            if attempt in boxed:
                steps.append((due, boxed[attempt] - due))
            previous = d
    return steps, arrivals


def fault_results(o: Observed, steps: list[tuple[float, float]]) -> list[FaultResult]:
    """Recovery per fault: the next completed step (a message at the sink or in the outbox) after the fault
    (after Redis answered again, for a Redis restart), and the restarted process answering."""
    done = sorted([m.arrived_at for m in o.sink] + [ts(e["at"]) for e in o.outbox])
    results: list[FaultResult] = []
    for f in o.faults:
        if f.at is None:
            results.append(FaultResult(f.kind, f.target, f.due, None, None, None, None, {}, f.note or "not done"))
            continue
        since = f.restart_at if f.kind in REDIS_SIGNALS and f.restart_at is not None else f.at
        following = next((t for t in done if t > since), None)
        next_step = None if following is None else following - f.at
        back = None if f.back_at is None else f.back_at - f.at
        if f.kind == WORKER_KILL:
            recovery = next_step
        elif f.kind in REDIS_SIGNALS:
            recovery = None if back is None or next_step is None else max(back, next_step)
        else:
            recovery = back
        window = [late for due, late in steps if f.at <= due < f.at + RECOVERY_WINDOW_S]
        results.append(FaultResult(
            f.kind, f.target, round(f.at - o.started, 2), None if f.restart_at is None else f.restart_at - f.at,
            back, next_step, recovery, summary(window), f.note,
        ))  # fmt: skip
    return results


def timer_lateness(counters: dict[str, int]) -> dict[str, float | None]:
    """p50 and p99 of /metrics' parley_timer_lateness_seconds, as the bucket bounds they fall in (None:
    beyond the last bound, `last_bound_s`), and the mean."""
    count = counters.get("lateness_count", 0)
    total = counters.get("lateness_sum_us", 0) / 1e6
    out: dict[str, float | None] = {"count": count, "mean_s": total / count if count else None,
                                    "last_bound_s": LATENESS_BUCKETS[-1]}  # fmt: skip
    for name, pct in (("p50_le_s", 50), ("p99_le_s", 99)):
        running, bound = 0, None
        for b in LATENESS_BUCKETS:
            running += counters.get(f"lateness|{b}", 0)
            if count and running >= count * pct / 100:
                bound = b
                break
        out[name] = bound
    return out


def unfinished(o: Observed) -> tuple[list[str], list[str]]:
    """Still active at the end; and of those, the stuck: no next step in the future to move them."""
    active = [nid for nid, v in o.views.items() if v and v.get("status") == "active"]
    stuck = [nid for nid in active if not (o.views[nid] or {}).get("next_step_at")
             or ts(str((o.views[nid] or {})["next_step_at"])) < o.ended - STUCK_AFTER_S]  # fmt: skip
    return active, stuck


def analyse(o: Observed) -> ChaosResult:
    ix = Index(o)
    not_found = [nid for nid in ix.accepted if o.views.get(nid, {}) is None]
    unread = [nid for nid in ix.accepted if nid not in o.views]
    active, stuck = unfinished(o)
    extra, hidden, dups = duplicates(o, ix)
    late, close = after_stops(o, ix)
    missing = missing_sends(o, ix)
    steps, arrivals = step_lateness(o, ix)
    boxed = Counter((str(e.get("notification_id")), str(e.get("attempt"))) for e in o.outbox)
    answers: dict[str, int] = o.tally["answers"]
    return ChaosResult(
        settings={k: v for k, v in asdict(o.options).items() if k not in ("root", "keep")},
        seconds=round(o.seconds, 1), posted=o.options.count, accepted=len(ix.accepted),
        stops_acknowledged=len(o.tally["stops"]), not_found=len(not_found) + len(unread), unfinished=len(active),
        stuck=len(stuck), client_errors=len(o.tally["errors"]), server_errors=answers.get("500", 0), answers=answers,
        statuses=dict(Counter(str((v or {}).get("status", "not found")) for v in o.views.values())),
        sink_messages=len(o.sink), sink_duplicates=extra, hidden_duplicates=hidden, duplicates=dups,
        outbox_messages=len(o.outbox), outbox_duplicates=sum(n - 1 for n in boxed.values()),
        sends_after_stop_smtp=sum(1 for x in late if x["where"] == "smtp"),
        sends_after_stop_outbox=sum(1 for x in late if x["where"] == "outbox"), after_stop=late,
        sends_just_before_stop=close, stop_results=dict(Counter(str(x["result"]) for x in o.tally["stops"])),
        missing_sends=len(missing), workers_alive=o.workers_alive, workers=2, unexpected_exits=o.unexpected_exits,
        lateness={"steps": summary([s for _, s in steps]), "email_arrival": summary(arrivals)},
        timer_lateness=timer_lateness(o.metrics), faults=fault_results(o, steps), outbox_gaps=o.outbox_gaps,
        queue_depth_max=max((d for _, d in o.queue_depths), default=0), log_counts=o.log_counts,
        interrupted_attempts=sum(1 for v in o.views.values() for d in (v or {}).get("deliveries", [])
                                 if any(h.get("outcome") == "unknown" for h in d.get("history") or [])),
        examples={"not_found": not_found[:EXAMPLES], "unread": unread[:EXAMPLES], "unfinished": active[:EXAMPLES],
                  "stuck": stuck[:EXAMPLES], "missing_sends": missing[:EXAMPLES],
                  "client_errors": [str(e) for e in o.tally["errors"][:EXAMPLES]]},
        machine=o.machine, root=o.root,
    )  # fmt: skip
