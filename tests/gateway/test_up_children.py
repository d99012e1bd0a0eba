"""Issue 17: `parley up` killed outright (SIGKILL, no clean-up of its own) takes its worker and its
embedded Valkey down with it, instead of leaving them running against a dead port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway.embedded import free_port
from tests.fixtures import KEYS, write_config


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status waits to be read


def test_a_killed_parley_up_leaves_no_worker_or_valkey_behind(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra=f"data_dir: {tmp_path / 'data'}")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # no Redis given: the embedded one
    env.update({f"{n.upper()}_KEY": k for n, k in KEYS.items()})
    port = free_port()
    up = subprocess.Popen([sys.executable, "-m", "gateway.cli", "up", "--config", str(config), "--port", str(port)],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline and up.poll() is None, "parley up did not start"
                time.sleep(0.2)
        children = _children(up.pid)
        assert len(children) == 2  # the embedded Valkey and the worker
        up.send_signal(signal.SIGKILL)
        up.wait()
        deadline = time.monotonic() + 15
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [c for c in children if _alive(c)] == []
    finally:
        if up.poll() is None:
            up.kill()
