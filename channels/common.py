"""What the provider adapters share: settings conventions, secrets from the environment, headers.

Settings models hold no secrets. A credential is named by the environment variable that holds
it (`auth_token_env: TWILIO_AUTH_TOKEN`), so config.yaml can be committed; an adapter reads the
variable once, when it is built, and fails then if it is missing (`ProviderConfigError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ProviderConfigError(Exception):
    """A provider section that cannot work: a missing environment variable, a missing file."""


class Section(BaseModel):
    """Base of every provider settings model: unknown keys are an error, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# `max_in_flight` of a provider section: its calls at once, per worker process. A worker runs many
# notifications at once (worker.in_flight); each provider's own bound keeps a slow one from taking every
# thread or connection, and keeps a burst within what the provider's account allows.
MaxInFlight = Annotated[int, Field(ge=1, le=1000)]


class Bound:
    """At most `size` calls at once, per event loop (an asyncio semaphore serves one loop; tests run several)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.size))
        return self._slots[1]


def sdk_threads(section: str, size: int) -> ThreadPoolExecutor:
    """The threads a synchronous SDK's calls run on, `size` of them, the provider's own: in the event loop's
    shared default executor (min(32, CPUs + 4) threads: 6 on two CPUs) a slow provider held up the others,
    and every provider was capped at 30 calls/s at 200 ms."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"parley-{section}")


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
