"""Email over SMTP (aiosmtplib): multipart text + HTML, From / Reply-To per tenant.

The relay accepting the message is all SMTP tells us, so a send is ACCEPTED; no receipt
follows. The Message-ID is ours (`<parley.{notification}.{attempt}@{sender domain}>`): the
same attempt sent again carries the same Message-ID, which lets mail systems drop the
duplicate, and it is returned as the provider id.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from email import policy as email_policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Annotated, Literal

import aiosmtplib
from pydantic import Field

from channels.base import LEASE_ENDING, Message, Outcome, Reason, SendResult, hold_back, too_late
from channels.common import Bound, ProviderConfigError, Section, env_secret
from rules.model import Channel

DEFAULT_PORT = {"tls": 465, "starttls": 587, "none": 25}
# SMTP reply codes that say the recipient address itself is bad (RFC 5321 4.2.3, 3463 for 5.1.x)
BAD_MAILBOX = frozenset({550, 551, 553})


class _Headers(HeaderRegistry):
    """The standard header classes, each built once: HeaderRegistry builds a new class on every header
    it parses (`type(...)` per call), a third of the CPU of composing a message."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().__getitem__(name)
        return built


# email.policy.default (what EmailMessage uses), with the header classes built once.
POLICY = email_policy.default.clone(header_factory=_Headers())


class EmailSender(Section):
    from_: Annotated[str, Field(alias="from")]  # "Acme <noreply@acme.example>"
    reply_to: str | None = None


class EmailSettings(Section):
    """`providers.email`. Credentials: `username_env` / `password_env` name environment variables."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: 465 tls, 587 starttls, 25 none
    security: Literal["tls", "starttls", "none"] = "starttls"  # implicit TLS, STARTTLS, or plain
    username_env: str | None = None  # no username: no AUTH
    password_env: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0
    # A worker's batch sends all at once; relays limit sessions per client (Postfix: 50)
    # and answer the rest 421, which would cost each message a try.
    max_sessions: Annotated[int, Field(ge=1)] = 10  # at once, per worker process
    validate_certs: bool = True
    # The name said in EHLO. Default: this machine's FQDN, looked up once at start (aiosmtplib looks it
    # up on every connection, on the event loop's shared threads: a slow resolver slowed every email).
    local_hostname: str | None = None
    default: EmailSender
    tenants: dict[str, EmailSender] = Field(default_factory=dict)

    def sender(self, tenant: str) -> EmailSender:
        return self.tenants.get(tenant, self.default)


def classify(exc: BaseException) -> SendResult:
    """Every SMTP failure: a 4xx reply, a dropped connection or a timeout is worth another try;
    a 5xx reply is not. A refused recipient carries its own reply code."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        refused = exc.recipients[0]
        return _by_reply(refused.code, f"recipient refused: {refused.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_reply(exc.code, f"{type(exc).__name__}: {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendResult.failed(Outcome.TRANSIENT, f"smtp timeout: {exc}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError):
        return SendResult.failed(Outcome.TRANSIENT, f"smtp connection: {exc}")
    return SendResult.failed(Outcome.PERMANENT, f"smtp: {type(exc).__name__}: {exc}")  # e.g. STARTTLS unsupported


def _by_reply(code: int, text: str) -> SendResult:
    detail = f"smtp {code} {text}".strip()
    if 400 <= code < 500:
        return SendResult.failed(Outcome.TRANSIENT, detail)
    return SendResult.failed(Outcome.PERMANENT, detail, Reason.ADDRESS_INVALID if code in BAD_MAILBOX else None)


class EmailChannel:
    name = Channel.EMAIL

    def __init__(self, settings: EmailSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self._auth: tuple[str, str] | None = None
        if settings.username_env:
            if not settings.password_env:
                raise ProviderConfigError("providers.email: username_env needs password_env")
            user = env_secret(environ, settings.username_env, "providers.email")
            self._auth = (user, env_secret(environ, settings.password_env, "providers.email"))
        self._sessions = Bound(settings.max_sessions)
        self._ehlo_name = settings.local_hostname or socket.getfqdn()

    async def send(self, message: Message) -> SendResult:
        mail = self.compose(message)
        async with self._sessions.slot():
            if too_late(message.deadline, self.settings.timeout):  # before opening a connection for nothing
                return LEASE_ENDING
            return await self._submit(message, mail)

    async def _submit(self, message: Message, mail: EmailMessage) -> SendResult:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port or DEFAULT_PORT[s.security],
            username=self._auth[0] if self._auth else None, password=self._auth[1] if self._auth else None,
            use_tls=s.security == "tls", start_tls=s.security == "starttls",
            timeout=s.timeout, validate_certs=s.validate_certs, local_hostname=self._ehlo_name,
        )  # fmt: skip
        try:
            async with client:  # connected, EHLO (STARTTLS, AUTH) done: the next command starts the transaction
                # Asked here, not before connecting: a stop acknowledged while the session opened still
                # keeps the message back, and the window left is MAIL FROM to the server's answer to DATA.
                held = await hold_back(message, s.timeout)
                if held is not None:
                    return held
                refused, _ = await client.send_message(mail)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return classify(exc)
        if message.address in refused:  # only when some recipients were accepted: never with one
            reply = refused[message.address]
            return _by_reply(reply.code, f"recipient refused: {reply.message}")
        return SendResult(Outcome.ACCEPTED, provider_id=str(mail["Message-ID"]))

    def compose(self, message: Message) -> EmailMessage:
        sender = self.settings.sender(message.tenant)
        mail = EmailMessage(policy=POLICY)
        mail["From"] = sender.from_
        mail["To"] = message.address
        if sender.reply_to:
            mail["Reply-To"] = sender.reply_to
        mail["Subject"] = message.parts.get("subject", "")
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message_id(message, sender.from_)
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a notification
        mail.set_content(message.parts.get("text", ""))
        if message.parts.get("html"):
            mail.add_alternative(message.parts["html"], subtype="html")
        return mail


def message_id(message: Message, from_header: str) -> str:
    """`<parley.{notification}.{attempt}@{domain of From}>`, with only dot-atom characters."""
    domain = re.sub(r"[^A-Za-z0-9.\-]", "", parseaddr(from_header)[1].rpartition("@")[2]) or "parley.invalid"
    local = re.sub(r"[^A-Za-z0-9.\-]", "-", f"parley.{message.notification_id}.{message.attempt_key}")
    return f"<{local}@{domain}>"
