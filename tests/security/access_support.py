"""An API with tenants written per test: keys with roles, expiry and limits, on the real app and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gateway.config import Settings, load_settings
from gateway.http.app import create_app
from gateway.rulesets import RulesHolder
from gateway.state.store import Store
from tests.fixtures import REPO, RULES, Clock

PHONE_A, PHONE_B = "+14155550199", "+4915112345678"


def write(folder: Path, tenants: str, server: str = "", rules: str = RULES) -> Path:
    """A config.yaml with these `tenants:` lines (indented by two) and `server:` lines."""
    body = f"templates: {REPO / 'templates'}\nworker: {{lease: 2s}}\n"
    if server:
        body += "server:\n" + "\n".join("  " + line for line in server.strip().splitlines()) + "\n"
    body += "tenants:\n" + "\n".join("  " + line for line in tenants.strip().splitlines()) + "\n"
    body += "rules:\n" + "\n".join("  " + line for line in rules.strip().splitlines()) + "\n"
    path = folder / "config.yaml"
    path.write_text(body)
    return path


class Api:
    """One API process (in-process TestClient) on a config file; several may share one Redis."""

    def __init__(self, path: Path, clock: Clock, client: tuple[str, int] = ("203.0.113.7", 50000)) -> None:
        self.settings: Settings = load_settings(path)
        assert self.settings.redis_url
        holder = RulesHolder(self.settings)
        assert not holder.reload()
        store = Store.connect(self.settings.redis_url, self.settings.retention)
        self.app = create_app(self.settings, store, holder, clock)
        self.client = TestClient(self.app, client=client)
        self.client.__enter__()

    def call(self, method: str, path: str, key: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.client.request(method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def intent() -> dict[str, Any]:
    return {"event": "inquiry.created", "recipient": {"id": "seller-42", "email": "seller@example.com"}}


def session_body() -> dict[str, Any]:
    return {"participants": [{"id": "buyer-7", "phone": PHONE_A}, {"id": "seller-42", "phone": PHONE_B}]}
