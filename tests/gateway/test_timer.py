"""The timer and its jobs: how due notifications become RQ jobs, and how a job runs them."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from rq import Queue

from gateway.delivery import worker
from gateway.delivery.worker import BATCH, MAX_BATCH, job_sizes
from tests.fixtures import Harness


@pytest.mark.parametrize(
    "count", [0, 1, 83, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH - 1, 2 * BATCH, 650, 1000, 2000, 4321]
)
@pytest.mark.parametrize("behind", [0, 150, 2000, 100_000])
def test_a_lease_is_cut_into_jobs_that_cover_it_once_within_the_bounds(count: int, behind: int) -> None:
    sizes = job_sizes(count, behind)
    assert sum(sizes) == count
    if count < 2 * BATCH:
        assert sizes == ([count] if count else [])  # too few to be worth two jobs of RQ's overhead
        return
    assert all(BATCH <= size <= MAX_BATCH for size in sizes)
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # big first
    if len(sizes) > 1 and sizes[-1] > sizes[-2]:
        assert sizes[-1] < 2 * BATCH  # the last one took in a remainder smaller than BATCH


def test_a_long_backlog_gets_the_biggest_jobs_and_its_end_small_ones() -> None:
    assert job_sizes(2000, behind=100_000) == [MAX_BATCH] * (2000 // MAX_BATCH)
    tail = job_sizes(2000)  # the last lease of a burst: nothing behind it
    assert tail[0] == MAX_BATCH and tail[-1] < 2 * BATCH and len(tail) > 2000 // MAX_BATCH


def test_a_backlog_is_handed_out_once_in_shrinking_jobs(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small bounds so that a few notifications make a backlog of several leases.
    monkeypatch.setattr(worker, "BATCH", 2)
    monkeypatch.setattr(worker, "MAX_BATCH", 5)
    monkeypatch.setattr(worker, "LEASE_LIMIT", 10)
    ids = {harness.notify(event="quick.ping") for _ in range(23)}
    queue: Queue = harness.timer.queue
    assert harness.timer.fire() == 10
    assert harness.timer.fire() == 10
    assert harness.timer.fire() == 3
    assert harness.timer.fire() == 0
    jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
    chunks = [job.args[0] for job in jobs if job is not None]
    # 13 still due behind the first lease: its jobs are the biggest; 3 behind the second: they shrink.
    assert [len(chunk) for chunk in chunks] == [5, 5, 3, 2, 2, 3, 3]
    assert sorted(item[0] for chunk in chunks for item in chunk) == sorted(ids)


def test_sends_run_without_collector_pauses_and_the_collector_is_back_when_the_worker_stops(
    harness: Harness,
) -> None:
    ids = [harness.notify(event="quick.ping") for _ in range(5)]
    now_ms = int(harness.clock.now.timestamp() * 1000)
    items = [[x.id, x.due_ms, x.token] for x in harness.timer.store.lease(now_ms, 10, 2000)]
    collections: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(1)  # any allocation would start a collection
    gc.callbacks.append(seen)
    try:
        assert worker.run_batch(items) == len(ids)
        assert worker.installed().settle(10)
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*threshold)
    assert collections == []
    assert all(harness.sent(nid) == [("email", "inquiry-new"), ("sms", "inquiry-new")] for nid in ids)
    worker.uninstall()
    assert gc.isenabled()
