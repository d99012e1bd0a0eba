"""Push through the real firebase-admin SDK against Prism on FCM's contract (converted from the
discovery document in google-api-python-client)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import exceptions, messaging

from channels.base import Outcome, Reason, SendResult
from channels.common import ProviderConfigError
from channels.fcm.channel import PushChannel, PushSettings, classify
from rules.model import Channel
from tests.channels.conftest import PrismFirebaseCredential, make_message
from tests.contracts import overlays, prism

# Registration tokens go in FCM's `token` field, which firebase-admin 7 marks deprecated in favour of
# `fid` (Firebase Installation IDs); FCM still accepts tokens there (docs/channels.md).
pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

PROJECT = "demo-project"
TOKEN = "fcm-registration-token-123"


@pytest.fixture
def push(fcm_credential: PrismFirebaseCredential) -> PushChannel:
    return PushChannel(PushSettings(project_id=PROJECT, app_name="parley-test-prism"), {}, credential=fcm_credential)


def send(channel: PushChannel, token: str = TOKEN) -> SendResult:
    message = make_message(Channel.PUSH, token, {"title": "New inquiry", "body": "Someone asked about your bike"})
    return asyncio.run(channel.send(message))


def test_a_push_the_contract_accepts_is_accepted_with_fcms_message_name(push: PushChannel) -> None:
    result = send(push)
    assert result.outcome is Outcome.ACCEPTED and result.provider_id is not None


def test_the_request_body_has_the_shape_fcm_documents(push: PushChannel) -> None:
    """The discovery document marks no field required, so the shape is checked here too."""
    message = make_message(Channel.PUSH, TOKEN, {"title": "New inquiry", "body": "Someone asked"})
    body = messaging._MessagingService.encode_message(push.compose(message))
    assert body == {
        "token": TOKEN,
        "notification": {"title": "New inquiry", "body": "Someone asked"},
        "data": {"notification_id": "n-123", "attempt": "0.0.push"},
        "android": {"priority": "high"},
    }


@pytest.mark.parametrize(
    ("prefer", "outcome", "reason", "words"),
    [
        ("code=404", Outcome.PERMANENT, Reason.TOKEN_INVALID, "token_invalid: fcm UNREGISTERED (http 404)"),
        ("code=403", Outcome.PERMANENT, Reason.TOKEN_INVALID, "token_invalid: fcm SENDER_ID_MISMATCH (http 403)"),
        ("code=400", Outcome.PERMANENT, Reason.TOKEN_INVALID, "token_invalid: fcm INVALID_ARGUMENT (http 400)"),
    ],
)
def test_tokens_fcm_will_not_deliver_to_are_permanent_and_invalid(
    push: PushChannel,
    fcm_credential: PrismFirebaseCredential,
    prefer: str,
    outcome: Outcome,
    reason: Reason,
    words: str,
) -> None:
    fcm_credential.google.prefer = prefer
    result = send(push)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.detail is not None and result.detail.startswith(words)


def test_quota_exceeded_is_transient_and_honours_retry_after(
    push: PushChannel, fcm_credential: PrismFirebaseCredential
) -> None:
    fcm_credential.google.prefer = "code=429"
    result = send(push)
    assert result.outcome is Outcome.TRANSIENT and result.retry_after == overlays.FCM_RETRY_AFTER
    assert result.detail is not None and result.detail.startswith("fcm QUOTA_EXCEEDED (http 429)")


def test_a_request_without_credentials_breaks_the_contract(
    push: PushChannel, fcm_credential: PrismFirebaseCredential
) -> None:
    fcm_credential.google.authorize = False  # no Authorization header: Prism answers 401
    result = send(push)
    assert result.outcome is Outcome.PERMANENT and result.reason is None
    assert result.detail is not None and "UNAUTHENTICATED" in result.detail and "(http 401)" in result.detail


def test_no_server_is_transient(fcm_credential: PrismFirebaseCredential, monkeypatch: pytest.MonkeyPatch) -> None:
    down = f"http://127.0.0.1:{prism.free_port()}/v1/projects/{{0}}/messages:send"
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", down)  # read when this new app first sends
    channel = PushChannel(PushSettings(project_id=PROJECT, app_name="parley-test-down"), {}, credential=fcm_credential)
    result = send(channel)
    assert result.outcome is Outcome.TRANSIENT and result.detail is not None and "UNAVAILABLE" in result.detail


def test_an_empty_token_is_refused_before_any_request(push: PushChannel) -> None:
    result = send(push, token=" ")
    assert result.outcome is Outcome.PERMANENT and result.reason is Reason.TOKEN_INVALID


def test_credentials_come_from_the_service_account_file_named_by_the_environment(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    account = {
        "type": "service_account", "project_id": "from-file", "private_key_id": "k1", "private_key": pem.decode(),
        "client_email": "parley@from-file.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }  # fmt: skip
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(account))
    channel = PushChannel(PushSettings(credentials_env="FCM_CREDENTIALS"), {"FCM_CREDENTIALS": str(path)})
    assert channel.app.project_id == "from-file"
    with pytest.raises(ProviderConfigError, match="FCM_CREDENTIALS"):
        PushChannel(PushSettings(credentials_env="FCM_CREDENTIALS", app_name="other"), {})
    with pytest.raises(ProviderConfigError, match="names no file"):
        PushChannel(PushSettings(credentials_env="FCM_CREDENTIALS"), {"FCM_CREDENTIALS": str(tmp_path / "nope.json")})


@pytest.mark.parametrize(
    ("error", "outcome", "reason"),
    [
        (exceptions.UnavailableError("unavailable"), Outcome.TRANSIENT, None),
        (exceptions.InternalError("internal"), Outcome.TRANSIENT, None),
        (exceptions.DeadlineExceededError("timeout"), Outcome.TRANSIENT, None),
        (exceptions.InvalidArgumentError("Invalid value at 'message.android.ttl'"), Outcome.PERMANENT, None),
        (messaging.ThirdPartyAuthError("APNs certificate"), Outcome.PERMANENT, None),
        (messaging.UnregisteredError("gone"), Outcome.PERMANENT, Reason.TOKEN_INVALID),
    ],
)
def test_the_fcm_error_table(error: exceptions.FirebaseError, outcome: Outcome, reason: Reason | None) -> None:
    result = classify(error)
    assert (result.outcome, result.reason) == (outcome, reason)
