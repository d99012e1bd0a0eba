"""What the provider adapters share: settings conventions, secrets from the environment, headers.

Settings models hold no secrets. A credential is named by the environment variable that holds
it (`auth_token_env: TWILIO_AUTH_TOKEN`), so config.yaml can be committed; an adapter reads the
variable once, when it is built, and fails then if it is missing (`ProviderConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, ConfigDict


class ProviderConfigError(Exception):
    """A provider section that cannot work: a missing environment variable, a missing file."""


class Section(BaseModel):
    """Base of every provider settings model: unknown keys are an error, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def env_secret(environ: Mapping[str, str], name: str, what: str) -> str:
    """The value of environment variable `name`; a clear error naming `what` needs it."""
    value = environ.get(name, "")
    if not value:
        raise ProviderConfigError(f"{what}: environment variable {name} is not set")
    return value


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A response header by name, whatever its case."""
    if not headers:
        return None
    wanted = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == wanted), None)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
