"""Real servers for the provider adapters: Prism on Twilio's, Slack's and FCM's published
contracts (started once per session, on first use, all three at once), and the SDK hooks
that point each provider's own client at them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from firebase_admin import credentials as firebase_credentials
from firebase_admin import messaging
from google.auth import credentials as google_credentials

from channels.base import Message
from channels.twilio.client import RecordingHttpClient
from rules.model import Channel
from tests.contracts import fcm_openapi, overlays, prism

ACCOUNT_SID = "AC" + "a" * 32  # Twilio's contract checks the SID's pattern
TWILIO_ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "test-auth-token"}


def make_message(channel: Channel, address: str, parts: dict[str, str], tenant: str = "acme") -> Message:
    return Message(
        tenant=tenant, notification_id="n-123", attempt_key=f"0.0.{channel}", fence=1, channel=channel,
        address=address, template="inquiry-new", locale="en", parts=parts,
    )  # fmt: skip


@pytest.fixture(scope="session")
def prisms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, prism.Prism]]:
    """Prism on each contract (with the providers' documented error envelopes overlaid)."""
    workdir = tmp_path_factory.mktemp("prism")
    prism.ensure_installed()
    specs = {
        "twilio": overlays.twilio(prism.load_json(prism.TWILIO_SPEC)),
        "slack": overlays.slack(prism.load_json(prism.SLACK_SPEC)),
        "fcm": overlays.fcm(fcm_openapi.convert(prism.load_json(fcm_openapi.DISCOVERY))),
    }
    servers = {name: prism.start(name, spec, workdir) for name, spec in specs.items()}
    try:
        for server in servers.values():
            prism.wait_ready(server)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


# -- Twilio: an HTTP client that sends every Twilio host's requests to Prism --------------------


class PrismHttpClient(RecordingHttpClient):
    """The adapter's own client, with the scheme and host swapped for Prism's and an optional
    `Prefer` header that asks Prism for one of the contract's responses."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=10)
        self.base = urlsplit(base_url)
        self.prefer: str | None = None
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        url = urlunsplit((self.base.scheme, self.base.netloc, parts.path, parts.query, parts.fragment))
        headers = dict(kwargs.pop("headers", None) or {})
        if self.prefer:
            headers["Prefer"] = self.prefer
        self.sent.append({"method": method, "url": url, "data": dict(kwargs.get("data") or {})})
        response = super().request(method, url, *args, headers=headers, **kwargs)
        self.sent[-1]["status"] = response.status_code
        return response


@pytest.fixture
def twilio_http(prisms: dict[str, prism.Prism]) -> PrismHttpClient:
    return PrismHttpClient(prisms["twilio"].url)


# -- FCM: firebase-admin's endpoint and credentials -----------------------------------------------


class PrismGoogleCredentials(google_credentials.Credentials):
    """A bearer token that needs no Google sign-in; can add a `Prefer` header, or leave auth out."""

    def __init__(self) -> None:
        super().__init__()
        self.token = "test-access-token"
        self.prefer: str | None = None
        self.authorize = True

    def refresh(self, request: Any) -> None:
        return None

    def apply(self, headers: dict[str, str], token: str | None = None) -> None:
        if self.authorize:
            headers["authorization"] = f"Bearer {self.token}"
        if self.prefer:
            headers["Prefer"] = self.prefer


class PrismFirebaseCredential(firebase_credentials.Base):  # type: ignore[misc]
    def __init__(self, google: PrismGoogleCredentials) -> None:
        self.google = google

    def get_credential(self) -> PrismGoogleCredentials:
        return self.google


FCM_PATH = "/v1/projects/{0}/messages:send"


@pytest.fixture(scope="session")
def fcm_url(prisms: dict[str, prism.Prism]) -> Iterator[str]:
    """firebase-admin reads this class attribute when an app first sends (README of the contracts)."""
    original = messaging._MessagingService.FCM_URL
    messaging._MessagingService.FCM_URL = prisms["fcm"].url + FCM_PATH
    yield messaging._MessagingService.FCM_URL
    messaging._MessagingService.FCM_URL = original


@pytest.fixture(scope="session")
def fcm_google_credentials() -> PrismGoogleCredentials:
    return PrismGoogleCredentials()


@pytest.fixture
def fcm_credential(fcm_url: str, fcm_google_credentials: PrismGoogleCredentials) -> Iterator[PrismFirebaseCredential]:
    fcm_google_credentials.prefer, fcm_google_credentials.authorize = None, True
    yield PrismFirebaseCredential(fcm_google_credentials)
    fcm_google_credentials.prefer, fcm_google_credentials.authorize = None, True
