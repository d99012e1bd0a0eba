"""Issue 17: a small chaos run (bench.chaos) as a test. Real processes: Redis with AOF, two API
processes, two workers, an SMTP sink answering in 0.2 s and a load client; one worker and Redis itself
are SIGKILLed in the middle of the load and started again. Nothing accepted is lost, nothing is sent
after an acknowledged stop, every duplicate the sink got shows in the API, and every process is gone
afterwards."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from bench.chaos.result import table
from bench.chaos.run import run
from bench.chaos.settings import REDIS_SIGKILL, WORKER_KILL, Options

# 80 notifications over 16 s (below the rate at which two workers fall behind a 0.2 s provider), a
# 10 s lease so that the killed worker's batch comes back within the run, and at most 40 s to settle:
# about 35 s in all on a 2-core machine.
SMALL = Options(
    count=80,
    rate=5.0,
    seed=17,
    faults=(WORKER_KILL, REDIS_SIGKILL),
    lease_s=10,
    settle_s=40.0,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.slow
def test_a_small_chaos_run_loses_nothing_and_hides_no_duplicate(tmp_path: Path) -> None:
    result = run(dataclasses.replace(SMALL, root=tmp_path))
    report = table(result) + f"\nlogs in {tmp_path}"
    print(report)  # shown with -s, or when the test fails
    assert sorted(f.kind for f in result.faults if f.down_s is not None) == sorted(SMALL.faults), report
    assert result.accepted == SMALL.count, report
    assert result.lost == 0, (result.examples, report)
    assert result.sends_after_stop == 0, (result.after_stop, report)
    assert result.hidden_duplicates == 0, (result.duplicates, report)
    assert result.missing_sends == 0, (result.examples["missing_sends"], report)
    assert result.workers_alive == result.workers == 2, (result.unexpected_exits, report)
    assert result.client_errors == 0 and result.server_errors == 0, (result.examples["client_errors"], report)
    assert result.started_pids, "the run reported no processes"
    assert not [pid for pid in result.started_pids if _alive(pid)], "a process outlived the run"
