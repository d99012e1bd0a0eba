"""Helpers the adapters share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.base import Outcome, Reason, SendResult
from channels.common import ProviderConfigError, env_secret, header, retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12", 12.0),
        (" 3 ", 3.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, now=datetime(2026, 10, 21, 7, 28, tzinfo=UTC)) == seconds


def test_headers_are_found_whatever_their_case() -> None:
    assert header({"Retry-After": "5"}, "retry-after") == "5"
    assert header(None, "retry-after") is None


def test_a_secret_comes_from_its_variable_or_fails_naming_it() -> None:
    assert env_secret({"X_TOKEN": "t"}, "X_TOKEN", "providers.x") == "t"
    with pytest.raises(ProviderConfigError, match=r"providers\.x: environment variable X_TOKEN is not set"):
        env_secret({"X_TOKEN": ""}, "X_TOKEN", "providers.x")


def test_a_failure_with_a_reason_starts_its_detail_with_it() -> None:
    result = SendResult.failed(Outcome.PERMANENT, "twilio 21610 unsubscribed", Reason.OPTED_OUT)
    assert result.detail == "opted_out: twilio 21610 unsubscribed" and result.reason is Reason.OPTED_OUT
    assert SendResult.failed(Outcome.TRANSIENT, "smtp 451").detail == "smtp 451"
