"""Stoplight Prism, the mock server that answers from a provider's published OpenAPI contract
and rejects requests that break it (422, or 401 without credentials).

Prism and Twilio's contracts come from npm, pinned, into `.contracts/` at the repository root
(the same command as `./dev test`); nothing is read from outside the repository at test time.
Prism is started as its own binary (not through npx, whose child would outlive a kill).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PREFIX = REPO / ".contracts"
PACKAGES = ("@stoplight/prism-cli@5", "@twilio-alpha/mcp@0.7.0")
PRISM_BIN = PREFIX / "node_modules/.bin/prism"
TWILIO_SPEC = PREFIX / "node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json"
SLACK_SPEC = REPO / "tests/contracts/slack_web_oas3.json"
START_TIMEOUT = 90.0  # seconds; Twilio's 1.9 MB contract takes a few on a busy machine


class PrismUnavailable(RuntimeError):
    """npm or Prism could not be set up; the message says what to install."""


def ensure_installed() -> None:
    """Install Prism and Twilio's contracts into .contracts/ unless they are there already."""
    if PRISM_BIN.exists() and TWILIO_SPEC.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise PrismUnavailable("npm is needed for the provider contract tests (Debian: apt-get install nodejs npm)")
    command = [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", *PACKAGES]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not PRISM_BIN.exists():
        raise PrismUnavailable(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Prism:
    """One running Prism: `url` is its base URL, `log` its output."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(name: str, spec: dict[str, Any], workdir: Path) -> Prism:
    """Write `spec` to `workdir` and start Prism on it on a free port (returns at once)."""
    ensure_installed()
    document = workdir / f"{name}.json"
    document.write_text(json.dumps(spec), encoding="utf-8")
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port), str(document)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    return Prism(name, process, f"http://127.0.0.1:{port}", log)


def wait_ready(prism: Prism, timeout: float = START_TIMEOUT) -> Prism:
    """Block until Prism answers HTTP (any status) or fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if prism.process.poll() is not None:
            raise PrismUnavailable(f"prism {prism.name} exited:\n{prism.log.read_text(errors='replace')}")
        try:
            urllib.request.urlopen(prism.url + "/__parley_ready", timeout=1).close()
            return prism
        except urllib.error.HTTPError:
            return prism  # an answer (Prism's 404 for an unknown path): it is up
        except OSError:
            time.sleep(0.2)
    prism.stop()
    raise PrismUnavailable(f"prism {prism.name} did not answer in {timeout:.0f}s:\n{prism.log.read_text()}")


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
