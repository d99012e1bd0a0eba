"""The email adapter against a real SMTP server (aiosmtpd) started in the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from channels.base import Outcome, Reason
from channels.common import ProviderConfigError
from channels.email.channel import EmailChannel, EmailSettings, classify
from rules.model import Channel
from tests.channels.conftest import make_message

PARTS = {
    "subject": "New inquiry",
    "text": "Someone asked about your bike.",
    "html": "<p>Someone asked about your <b>bike</b>.</p>",
}


class Mailbox:
    """An SMTP handler: 550 for unknown@, 451 for busy@, everything else is received."""

    def __init__(self, delay: float = 0.0) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.delay = delay

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.startswith("unknown@"):
            return "550 5.1.1 No such user here"
        if address.startswith("busy@"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


class FreePortController(Controller):
    """aiosmtpd 1.4's Controller with port=0: learn the bound port before its self-test connects."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp() -> Iterator[tuple[FreePortController, Mailbox]]:
    mailbox = Mailbox()
    controller = FreePortController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    yield controller, mailbox
    controller.stop(no_assert=True)


def settings(port: int, **extra: Any) -> EmailSettings:
    return EmailSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "timeout": 5,
            "default": {"from": "Parley <noreply@parley.example>"},
            "tenants": {"acme": {"from": "Acme <hello@acme.example>", "reply_to": "support@acme.example"}},
            **extra,
        }
    )


def send(channel: EmailChannel, address: str, tenant: str = "acme") -> Any:
    return asyncio.run(channel.send(make_message(Channel.EMAIL, address, PARTS, tenant)))


def test_a_message_is_multipart_with_our_message_id(smtp: tuple[FreePortController, Mailbox]) -> None:
    controller, mailbox = smtp
    result = send(EmailChannel(settings(controller.port), {}), "seller@example.org")
    assert result.outcome is Outcome.ACCEPTED
    [mail] = mailbox.received
    assert mail["Message-ID"] == result.provider_id == "<parley.n-123.0.0.email@acme.example>"
    assert mail["From"] == "Acme <hello@acme.example>" and mail["Reply-To"] == "support@acme.example"
    assert mail["To"] == "seller@example.org" and mail["Subject"] == "New inquiry"
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip() == PARTS["text"]  # type: ignore[union-attr]
    assert mail.get_body(("html",)).get_content().strip() == PARTS["html"]  # type: ignore[union-attr]
    assert mailbox.envelopes == [("hello@acme.example", ["seller@example.org"])]


class EhloMailbox(Mailbox):
    """Also keeps the name each client said in EHLO, and every raw message."""

    def __init__(self) -> None:
        super().__init__()
        self.ehlo: list[str] = []
        self.raw: list[bytes] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlo.append(hostname)
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(envelope.original_content or envelope.content)
        return await super().handle_DATA(server, session, envelope)


def test_non_ascii_headers_are_encoded_and_ehlo_says_the_configured_name() -> None:
    mailbox = EhloMailbox()
    controller = FreePortController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        channel = EmailChannel(settings(controller.port, local_hostname="mailer.acme.example"), {})
        parts = {**PARTS, "subject": "Neue Frage zu „Rotes Fahrrad“: Grüße"}  # one line: rendering makes it so
        message = make_message(Channel.EMAIL, "seller@example.org", parts, "acme")
        assert asyncio.run(channel.send(message)).outcome is Outcome.ACCEPTED
        assert asyncio.run(channel.send(message)).outcome is Outcome.ACCEPTED
    finally:
        controller.stop(no_assert=True)
    assert mailbox.ehlo == ["mailer.acme.example"] * 2
    raw = mailbox.raw[0]
    assert raw.isascii() and b"=?utf-8?" in raw  # RFC 2047, not raw UTF-8 in a header
    assert "Rotes Fahrrad" in mailbox.received[0]["Subject"] and "Grüße" in mailbox.received[0]["Subject"]


def test_a_tenant_without_its_own_sender_uses_the_default_and_text_only_is_not_multipart(
    smtp: tuple[FreePortController, Mailbox],
) -> None:
    controller, mailbox = smtp
    channel = EmailChannel(settings(controller.port), {})
    message = make_message(Channel.EMAIL, "a@example.org", {"subject": "Hi", "text": "Plain"}, tenant="globex")
    assert asyncio.run(channel.send(message)).outcome is Outcome.ACCEPTED
    [mail] = mailbox.received
    assert mail["From"] == "Parley <noreply@parley.example>" and mail["Reply-To"] is None
    assert mail.get_content_type() == "text/plain"


def test_550_for_the_recipient_is_permanent_and_says_the_address_is_bad(
    smtp: tuple[FreePortController, Mailbox],
) -> None:
    controller, mailbox = smtp
    result = send(EmailChannel(settings(controller.port), {}), "unknown@example.org")
    assert result.outcome is Outcome.PERMANENT and result.reason is Reason.ADDRESS_INVALID
    assert result.detail.startswith("address_invalid: smtp 550") and "No such user" in result.detail
    assert mailbox.received == []


def test_451_for_the_recipient_is_transient(smtp: tuple[FreePortController, Mailbox]) -> None:
    controller, _ = smtp
    result = send(EmailChannel(settings(controller.port), {}), "busy@example.org")
    assert result.outcome is Outcome.TRANSIENT and result.detail.startswith("smtp 451")


def test_a_server_that_is_gone_is_transient() -> None:
    controller = FreePortController(Mailbox(), hostname="127.0.0.1", port=0)
    controller.start()
    port = controller.port
    controller.stop()
    result = send(EmailChannel(settings(port), {}), "seller@example.org")
    assert result.outcome is Outcome.TRANSIENT and "smtp connection" in result.detail


def test_a_server_that_does_not_answer_in_time_is_transient() -> None:
    controller = FreePortController(Mailbox(delay=3), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        result = send(EmailChannel(settings(controller.port, timeout=0.5), {}), "seller@example.org")
    finally:
        controller.stop(no_assert=True)
    assert result.outcome is Outcome.TRANSIENT and "timeout" in result.detail


def test_starttls_and_auth_with_credentials_from_the_environment(tmp_path: Path) -> None:
    mailbox = Mailbox()
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.login == b"mailer" and data.password == b"s3cret", handled=False)

    controller = FreePortController(
        mailbox, hostname="127.0.0.1", port=0, tls_context=_server_tls(tmp_path), require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        config = settings(
            controller.port,
            security="starttls",
            validate_certs=False,
            username_env="SMTP_USER",
            password_env="SMTP_PASSWORD",
        )
        channel = EmailChannel(config, {"SMTP_USER": "mailer", "SMTP_PASSWORD": "s3cret"})
        assert send(channel, "seller@example.org").outcome is Outcome.ACCEPTED
        wrong = EmailChannel(config, {"SMTP_USER": "mailer", "SMTP_PASSWORD": "wrong"})
        refused = send(wrong, "seller@example.org")
    finally:
        controller.stop(no_assert=True)
    assert logins[0] == (b"mailer", b"s3cret") and len(mailbox.received) == 1
    assert refused.outcome is Outcome.PERMANENT and refused.detail.startswith("smtp 535")


def test_a_missing_password_variable_fails_when_the_adapter_is_built() -> None:
    config = settings(25, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    with pytest.raises(ProviderConfigError, match="SMTP_PASSWORD"):
        EmailChannel(config, {"SMTP_USER": "mailer"})


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (aiosmtplib.SMTPSenderRefused(553, "sender not allowed", "x@y"), Outcome.PERMANENT),
        (aiosmtplib.SMTPDataError(452, "insufficient storage"), Outcome.TRANSIENT),
        (aiosmtplib.SMTPDataError(554, "rejected as spam"), Outcome.PERMANENT),
        (aiosmtplib.SMTPConnectResponseError(421, "too many connections"), Outcome.TRANSIENT),
        (aiosmtplib.SMTPServerDisconnected("gone"), Outcome.TRANSIENT),
        (aiosmtplib.SMTPReadTimeoutError("slow"), Outcome.TRANSIENT),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"), Outcome.PERMANENT),
    ],
)
def test_the_smtp_error_table(error: Exception, outcome: Outcome) -> None:
    assert classify(error).outcome is outcome


def _server_tls(tmp_path: Path) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, made here (no files in the repository)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
