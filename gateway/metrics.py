"""Counters shared by every API and worker process, kept in one Redis hash and shown at /metrics."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

INTENTS = "intents_accepted"
STEPS = "escalation_steps"
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def send_field(channel: str, outcome: str) -> str:
    return f"sends|{channel}|{outcome}"


def stop_field(reason: str) -> str:
    return f"stops|{reason}"


def lateness_fields(seconds: float) -> dict[str, int]:
    """Histogram increments for one timer fire: its bucket, count and sum (in microseconds)."""
    bucket = next((str(b) for b in LATENESS_BUCKETS if seconds <= b), "+Inf")
    return {f"lateness|{bucket}": 1, "lateness_count": 1, "lateness_sum_us": int(seconds * 1_000_000)}


class Snapshot(Collector):
    """A prometheus collector over one read of the counters hash."""

    def __init__(self, counters: dict[str, int], due_depth: int, queue_depth: int) -> None:
        self.counters, self.due_depth, self.queue_depth = counters, due_depth, queue_depth

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        yield _counter("parley_intents_accepted", "Notification intents accepted", [((), c.get(INTENTS, 0))])
        yield _counter("parley_escalation_steps", "Escalation steps performed", [((), c.get(STEPS, 0))])
        sends = [(tuple(k.split("|")[1:]), v) for k, v in c.items() if k.startswith("sends|")]
        yield _counter("parley_sends", "Sends by channel and outcome", sends, ["channel", "outcome"])
        stops = [((k.split("|")[1],), v) for k, v in c.items() if k.startswith("stops|")]
        yield _counter("parley_stops", "Escalations stopped, by event", stops, ["event"])
        due = GaugeMetricFamily("parley_due_notifications", "Active notifications waiting for their next step")
        due.add_metric([], self.due_depth)
        yield due
        queue = GaugeMetricFamily("parley_queue_depth", "Jobs waiting in the RQ queue")
        queue.add_metric([], self.queue_depth)
        yield queue
        yield self._lateness()

    def _lateness(self) -> Metric:
        running, buckets = 0, []
        for bound in (*LATENESS_BUCKETS, "+Inf"):
            running += self.counters.get(f"lateness|{bound}", 0)
            buckets.append((str(bound), running))
        family = HistogramMetricFamily("parley_timer_lateness_seconds", "How late due steps fired")
        family.add_metric([], buckets, sum_value=self.counters.get("lateness_sum_us", 0) / 1_000_000)
        return family


def _counter(
    name: str, doc: str, samples: Iterable[tuple[tuple[str, ...], int]], labels: list[str] | None = None
) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels or [])
    for label_values, value in samples:
        family.add_metric(list(label_values), value)
    return family
