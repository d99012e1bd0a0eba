"""Push notifications through Firebase Cloud Messaging (firebase-admin, HTTP v1).

The address is one registration token. A send is ACCEPTED with FCM's message name as
provider id; FCM sends no delivery receipts. A token FCM will never deliver to again
(UNREGISTERED, SENDER_ID_MISMATCH, INVALID_ARGUMENT about the token) is PERMANENT with
reason `token_invalid`, so the marketplace can forget it.

firebase-admin is synchronous; `send_each` runs in one of the section's own threads
(`max_in_flight`). Each configuration gets its own named firebase app, so two configurations (or
tests) never share credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import firebase_admin
from firebase_admin import credentials, exceptions, messaging
from pydantic import Field

from channels.base import Message, Outcome, Reason, SendResult, hold_back_in_thread
from channels.common import MaxInFlight, ProviderConfigError, Section, env_secret, header, retry_after, sdk_threads
from rules.model import Channel

# FirebaseError type -> (outcome, reason, what). First match wins: FCM's own error types
# (from the response's FcmError detail) come before the generic status-based ones.
FCM_ERRORS: tuple[tuple[type[exceptions.FirebaseError], Outcome, Reason | None, str], ...] = (
    (messaging.UnregisteredError, Outcome.PERMANENT, Reason.TOKEN_INVALID, "UNREGISTERED"),
    (messaging.SenderIdMismatchError, Outcome.PERMANENT, Reason.TOKEN_INVALID, "SENDER_ID_MISMATCH"),
    (messaging.QuotaExceededError, Outcome.TRANSIENT, None, "QUOTA_EXCEEDED"),
    (messaging.ThirdPartyAuthError, Outcome.PERMANENT, None, "THIRD_PARTY_AUTH_ERROR (APNs/web push credentials)"),
    (exceptions.InvalidArgumentError, Outcome.PERMANENT, None, "INVALID_ARGUMENT"),  # token or payload: see below
    (exceptions.UnavailableError, Outcome.TRANSIENT, None, "UNAVAILABLE"),
    (exceptions.InternalError, Outcome.TRANSIENT, None, "INTERNAL"),
    (exceptions.DeadlineExceededError, Outcome.TRANSIENT, None, "DEADLINE_EXCEEDED"),
    (exceptions.ResourceExhaustedError, Outcome.TRANSIENT, None, "RESOURCE_EXHAUSTED"),
    (exceptions.UnauthenticatedError, Outcome.PERMANENT, None, "UNAUTHENTICATED (service account)"),
    (exceptions.PermissionDeniedError, Outcome.PERMANENT, None, "PERMISSION_DENIED"),
    (exceptions.NotFoundError, Outcome.PERMANENT, None, "NOT_FOUND"),
    (exceptions.UnknownError, Outcome.TRANSIENT, None, "UNKNOWN"),
)


def classify(exc: exceptions.FirebaseError) -> SendResult:
    """One FCM error as a send result. INVALID_ARGUMENT means a bad token only when FCM says so
    in its message; a bad payload must not make the caller drop a good token."""
    outcome, reason, what = Outcome.PERMANENT, None, exc.code
    for kind, kind_outcome, kind_reason, kind_what in FCM_ERRORS:
        if isinstance(exc, kind):
            outcome, reason, what = kind_outcome, kind_reason, kind_what
            break
    if isinstance(exc, exceptions.InvalidArgumentError) and "registration token" in str(exc).lower():
        reason = Reason.TOKEN_INVALID
    response = getattr(exc, "http_response", None)
    wait = retry_after(header(getattr(response, "headers", None), "Retry-After"))
    status = f" (http {response.status_code})" if response is not None else ""
    return SendResult.failed(
        outcome, f"fcm {what}{status}: {exc}", reason, retry_after=wait if outcome is Outcome.TRANSIENT else None
    )


class PushSettings(Section):
    """`providers.push`. `credentials_env` names the variable holding the service-account JSON file's path."""

    credentials_env: str = "GOOGLE_APPLICATION_CREDENTIALS"
    project_id: str | None = None  # default: the service account's project
    timeout: Annotated[float, Field(gt=0)] = 30.0
    android_priority: str = "high"  # "high" wakes the device; "normal" may wait for it
    app_name: str | None = None  # the firebase app's name; default: derived from this section
    max_in_flight: MaxInFlight = 20  # sends at once per worker process, each on a thread of its own


class PushChannel:
    name = Channel.PUSH

    def __init__(
        self, settings: PushSettings, environ: Mapping[str, str], credential: credentials.Base | None = None
    ) -> None:
        """`credential` replaces the service-account file (tests, or credentials from elsewhere)."""
        self.settings = settings
        if credential is None:
            path = Path(env_secret(environ, settings.credentials_env, "providers.push"))
            if not path.is_file():
                raise ProviderConfigError(f"providers.push: {settings.credentials_env} names no file: {path}")
            credential = credentials.Certificate(str(path))
        self.app = _app(settings, credential)
        self.threads = sdk_threads("push", settings.max_in_flight)

    async def send(self, message: Message) -> SendResult:
        if not message.address.strip():
            return SendResult.failed(Outcome.PERMANENT, "empty push token", Reason.TOKEN_INVALID)
        try:
            loop = asyncio.get_running_loop()
            batch = await loop.run_in_executor(self.threads, self._send_in_thread, message, loop)
        except exceptions.FirebaseError as exc:
            return classify(exc)
        except ValueError as exc:  # refused by firebase-admin before sending: a message it cannot encode
            return SendResult.failed(Outcome.PERMANENT, f"fcm: {exc}")
        if isinstance(batch, SendResult):
            return batch  # held back
        result = batch.responses[0]  # one token per send: its own result
        if result.success:
            return SendResult(Outcome.ACCEPTED, provider_id=str(result.message_id))
        return classify(result.exception)

    def _send_in_thread(
        self, message: Message, loop: asyncio.AbstractEventLoop
    ) -> messaging.BatchResponse | SendResult:
        held = hold_back_in_thread(message, self.settings.timeout, loop)  # in the thread: waiting for one is the delay
        if held is not None:
            return held
        return messaging.send_each([self.compose(message)], False, self.app)

    def compose(self, message: Message) -> messaging.Message:
        return messaging.Message(
            token=message.address,
            notification=messaging.Notification(title=message.parts.get("title"), body=message.parts.get("body")),
            data={"notification_id": message.notification_id, "attempt": message.attempt_key},
            android=messaging.AndroidConfig(priority=self.settings.android_priority),
        )


def _app(settings: PushSettings, credential: credentials.Base) -> Any:
    """The firebase app for this configuration: one per distinct section, reused when rebuilt."""
    digest = hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12]
    name = settings.app_name or f"parley-push-{digest}"
    try:
        return firebase_admin.get_app(name)
    except ValueError:
        options: dict[str, Any] = {"httpTimeout": settings.timeout}
        if settings.project_id:
            options["projectId"] = settings.project_id
        return firebase_admin.initialize_app(credential, options, name=name)
