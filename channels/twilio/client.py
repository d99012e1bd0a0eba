"""What SMS, WhatsApp and voice share: Twilio settings, the client, running it off the event loop, and
the one table that classifies Twilio's errors.

The twilio SDK is synchronous; a create call runs in one of the section's own threads (`max_in_flight`).
Its error carries the HTTP status and Twilio's error code but not the response headers, so
the client remembers each thread's last response to read a 429's Retry-After from it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

import requests
from pydantic import Field, model_validator
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import Message, Outcome, Reason, SendResult, hold_back_in_thread
from channels.common import MaxInFlight, Section, env_secret, header, retry_after, sdk_threads
from rules.phone import OwnNumber

STATUS_PATH = "/webhooks/twilio/status"

# Twilio error code -> (outcome, reason, what it means). Codes not listed fall back to the HTTP
# status: 429 and 5xx are transient, any other 4xx is permanent. twilio.com/docs/api/errors
TWILIO_ERRORS: dict[int, tuple[Outcome, Reason | None, str]] = {
    21211: (Outcome.PERMANENT, Reason.ADDRESS_INVALID, "invalid 'To' number"),
    21217: (Outcome.PERMANENT, Reason.ADDRESS_INVALID, "phone number does not appear to be valid"),
    21614: (Outcome.PERMANENT, Reason.ADDRESS_INVALID, "'To' is not a mobile number"),
    21612: (Outcome.PERMANENT, Reason.ADDRESS_INVALID, "'To' cannot be reached from this 'From'"),
    21610: (Outcome.PERMANENT, Reason.OPTED_OUT, "recipient unsubscribed (replied STOP)"),
    21408: (Outcome.PERMANENT, None, "sending to this region is not enabled for the account"),
    21215: (Outcome.PERMANENT, None, "calling this region is not enabled (geo permissions)"),
    21216: (Outcome.PERMANENT, None, "number is blocked for calls"),
    21606: (Outcome.PERMANENT, None, "'From' cannot send SMS (not an SMS number of this account)"),
    21608: (Outcome.PERMANENT, None, "trial account: 'To' is not a verified number"),
    20003: (Outcome.PERMANENT, None, "authentication failed (account SID / auth token)"),
    20404: (Outcome.PERMANENT, None, "resource not found (account SID?)"),
    20429: (Outcome.TRANSIENT, None, "too many requests"),
    14107: (Outcome.TRANSIENT, None, "SMS send rate limit exceeded"),
    30001: (Outcome.TRANSIENT, None, "queue overflow"),
    20500: (Outcome.TRANSIENT, None, "Twilio internal error"),
    20503: (Outcome.TRANSIENT, None, "Twilio service unavailable"),
}


def classify(status: int, code: int | None, message: str, retry_after_s: float | None = None) -> SendResult:
    """A Twilio error response as a send result (TWILIO_ERRORS first, then the HTTP status)."""
    known = TWILIO_ERRORS.get(code) if code is not None else None
    if known is not None:
        outcome, reason, meaning = known
        detail = f"twilio {code} {meaning} (http {status})"
    else:
        outcome = Outcome.TRANSIENT if status == 429 or status >= 500 else Outcome.PERMANENT
        reason = None
        shown = f"twilio {code} " if code is not None and code != status else "twilio "
        detail = f"{shown}http {status}: {message}"
    wait = retry_after_s if outcome is Outcome.TRANSIENT else None
    return SendResult.failed(outcome, detail, reason, retry_after=wait)


class TwilioSender(Section):
    """Who a message comes from: a number, or (texts only: SMS, WhatsApp) a Messaging Service that picks one."""

    from_number: OwnNumber | None = None
    messaging_service_sid: Annotated[str, Field(pattern=r"^MG[0-9a-fA-F]{32}$")] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TwilioSender:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("give exactly one of from_number and messaging_service_sid")
        return self

    def params(self, prefix: str = "") -> dict[str, str]:
        """`from_`, written as a channel address with `prefix` (`whatsapp:`), or the Messaging Service,
        which picks a sender of its pool for the channel `To` names."""
        if self.messaging_service_sid:
            return {"messaging_service_sid": self.messaging_service_sid}
        return {"from_": prefix + (self.from_number or "")}


class TwilioSettings(Section):
    """Shared by `providers.sms`, `providers.whatsapp` and `providers.voice`. Credentials: `*_env` name
    environment variables."""

    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    auth_token_env: str = "TWILIO_AUTH_TOKEN"
    public_url: str | None = None  # where Twilio reaches our webhooks; default: server.public_url
    timeout: Annotated[float, Field(gt=0)] = 15.0
    # Calls at once per worker process; Twilio allows 100 concurrent API requests per account by default
    # (error 20429 beyond), shared by every worker and every section.
    max_in_flight: MaxInFlight = 20
    default: TwilioSender
    tenants: dict[str, TwilioSender] = Field(default_factory=dict)

    def sender(self, tenant: str) -> TwilioSender:
        return self.tenants.get(tenant, self.default)

    def webhook(self, path: str, **query: str) -> str | None:
        """Our webhook URL for Twilio to call back, or None when no public URL is known."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")


class RecordingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Twilio's HTTP client, remembering each thread's last response (for its headers)."""

    def __init__(self, timeout: float, connections: int = 10) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()
        # One kept-alive connection per thread (the SDK's own pool keeps min(32, CPUs + 4); past that every
        # call opened a new TLS connection and logged "Connection pool is full").
        self.session.mount("https://", HTTPAdapter(pool_maxsize=connections))

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self._local.response = None
        response: Response = super().request(*args, **kwargs)
        self._local.response = response
        return response

    def last_headers(self) -> Mapping[str, str] | None:
        response = getattr(self._local, "response", None)
        return getattr(response, "headers", None)


class Twilio:
    """A Twilio client and how to call it without blocking the event loop or raising."""

    def __init__(
        self,
        settings: TwilioSettings,
        environ: Mapping[str, str],
        http_client: RecordingHttpClient | None = None,
        *,
        section: str,  # `providers.sms`, ...: named in the error about a missing variable
    ) -> None:
        self.timeout = settings.timeout
        self.http = http_client or RecordingHttpClient(settings.timeout, settings.max_in_flight)
        self.threads = sdk_threads(section.removeprefix("providers."), settings.max_in_flight)
        self.client = Client(
            env_secret(environ, settings.account_sid_env, section),
            env_secret(environ, settings.auth_token_env, section),
            http_client=self.http,
        )

    async def create(self, call: Callable[[Client], Any], message: Message | None = None) -> SendResult:
        """Run `call(client)` (a `.create(...)` returning a resource with a `sid`) in a thread, unless,
        once the thread is free, `message` should be held back (channels.base.hold_back)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.threads, self._create, call, message, loop)

    def _create(
        self, call: Callable[[Client], Any], message: Message | None, loop: asyncio.AbstractEventLoop
    ) -> SendResult:
        # asked in the thread: waiting for one is the delay
        held = hold_back_in_thread(message, self.timeout, loop) if message else None
        if held is not None:
            return held
        try:
            resource = call(self.client)
        except (TwilioRestException, TwilioServiceException) as exc:
            wait = retry_after(header(self.http.last_headers(), "Retry-After"))
            text = str(getattr(exc, "msg", None) or getattr(exc, "detail", None) or "")
            return classify(int(exc.status), exc.code, text, wait)
        except requests.Timeout as exc:
            return SendResult.failed(Outcome.TRANSIENT, f"twilio timeout: {exc}")
        except requests.RequestException as exc:
            return SendResult.failed(Outcome.TRANSIENT, f"twilio connection: {exc}")
        except TwilioException as exc:
            return SendResult.failed(Outcome.PERMANENT, f"twilio: {exc}")
        return SendResult(Outcome.ACCEPTED, provider_id=str(resource.sid))
