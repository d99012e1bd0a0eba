"""`parley serve` logs a line per request (uvicorn.access) unless `server.access_log: false`: where a load
balancer logs requests already, the line costs CPU for nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.embedded import EmbeddedRedis, free_port
from tests.fixtures import KEYS, write_config


def _serve_and_get(config: Path, redis_url: str) -> str:
    """Start `parley serve`, GET /healthz once it answers, stop it: what it wrote to stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("TWILIO_AUTH_TOKEN", "REDIS_URL")}
    env |= {f"{n.upper()}_KEY": k for n, k in KEYS.items()} | {"REDIS_URL": redis_url}
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?probe=1", timeout=1) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline and serve.poll() is None, "parley serve did not start"
                time.sleep(0.2)
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=20)
    return err


@pytest.mark.parametrize(("extra", "logged"), [("", True), ("server: {access_log: false}", False)])
def test_a_request_is_logged_unless_the_access_log_is_off(
    tmp_path: Path, redis_server: EmbeddedRedis, extra: str, logged: bool
) -> None:
    err = _serve_and_get(write_config(tmp_path, extra=extra), redis_server.url)
    assert "Uvicorn running" in err or "Application startup complete" in err  # it did log, through Parley's set-up
    assert ('"GET /healthz?probe=1 HTTP/1.1" 200' in err) is logged
