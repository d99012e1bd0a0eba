"""One version source: pyproject.toml's, shown by the CLI and the API's OpenAPI document."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.fixtures import Harness

VERSION = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["version"]


def test_the_cli_prints_the_packaged_version() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"parley {VERSION}"


def test_the_api_document_carries_the_same_version(harness: Harness) -> None:
    assert harness.api.get("/openapi.json").json()["info"]["version"] == VERSION
