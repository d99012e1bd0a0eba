"""Jinja filters that format dates, times and numbers for the recipient (Babel).

    {{ data.starts_at | datetime }}          23.11.2026, 11:00:00  (de, Europe/Berlin)
    {{ data.starts_at | date("long") }}      23. November 2026
    {{ data.starts_at | time }}              11:00
    {{ data.count | number }}                1.234
    {{ data.price | number(2) }}             1.234,50
    {{ data.price | currency("EUR") }}       1.234,50 €

Times are ISO-8601 text (as JSON carries them) or datetimes; one without an
offset is taken as UTC. They are shown in the recipient's timezone (UTC when
the intent has none). The locale is the recipient's own (`de-AT`) when Babel
knows it, else the template locale the renderer chose. Which recipient is set
for the duration of one render by `formatting(...)`, invisible to templates.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from jinja2 import TemplateRuntimeError

FORMATS = ("short", "medium", "long", "full")  # or a CLDR pattern such as "EEEE, d MMMM HH:mm"


class FilterError(TemplateRuntimeError):
    """A filter given a value it cannot format (the message names the filter and the value)."""


@dataclass(frozen=True)
class Formatting:
    locale: Locale
    tz: tzinfo


_ENGLISH = Formatting(Locale("en"), UTC)
_CURRENT: ContextVar[Formatting] = ContextVar("parley_formatting")


def babel_locale(tags: list[str]) -> Locale:
    """The first of `tags` Babel knows (`zh-CN` -> zh_Hans_CN), else English."""
    return _babel_locale(tuple(tags))


@functools.lru_cache(maxsize=512)  # parsing a tag was 3 % of a worker's CPU per send; Locales are read-only
def _babel_locale(tags: tuple[str, ...]) -> Locale:
    for tag in tags:
        with contextlib.suppress(UnknownLocaleError, ValueError):
            return Locale.parse(tag.replace("-", "_"))
    return Locale("en")


class formatting:  # a context manager, named and used like one written with contextlib
    """Format for `tags` (the first Babel knows) and `timezone` while the `with` block runs.

    A class rather than @contextlib.contextmanager: a render enters it once per send, and the
    generator machinery cost more than the work (python -m bench, dispatch)."""

    __slots__ = ("_token", "current")

    def __init__(self, tags: list[str], timezone: str | None) -> None:
        self.current = Formatting(babel_locale(tags), ZoneInfo(timezone) if timezone else UTC)

    def __enter__(self) -> Formatting:
        self._token = _CURRENT.set(self.current)
        return self.current

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


def _moment(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise FilterError(f"{name}: {value!r} is not an ISO-8601 time such as 2026-11-23T10:00:00Z") from None
    else:
        raise FilterError(f"{name}: expected an ISO-8601 time, got {type(value).__name__} {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def f_datetime(value: Any, format: str = "medium") -> str:
    fmt = _CURRENT.get(_ENGLISH)
    return babel_dates.format_datetime(_moment(value, "datetime"), format, tzinfo=fmt.tz, locale=fmt.locale)


def f_date(value: Any, format: str = "medium") -> str:
    fmt = _CURRENT.get(_ENGLISH)
    if isinstance(value, str) and len(value.strip()) == 10:  # a calendar date: no timezone to apply
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise FilterError(f"date: {value!r} is not an ISO-8601 date such as 2026-11-23") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        day = value
    else:
        day = _moment(value, "date").astimezone(fmt.tz).date()
    return babel_dates.format_date(day, format, locale=fmt.locale)


def f_time(value: Any, format: str = "short") -> str:
    fmt = _CURRENT.get(_ENGLISH)
    return babel_dates.format_time(_moment(value, "time"), format, tzinfo=fmt.tz, locale=fmt.locale)


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise FilterError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise FilterError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise FilterError(f"{name}: {value!r} is not a finite number")
    return number


def f_number(value: Any, decimals: int | None = None) -> str:
    fmt = _CURRENT.get(_ENGLISH)
    number = _decimal(value, "number")
    if decimals is None:
        return babel_numbers.format_decimal(number, locale=fmt.locale)
    if not isinstance(decimals, int) or not 0 <= decimals <= 10:
        raise FilterError(f"number: decimals must be a whole number from 0 to 10, got {decimals!r}")
    pattern = (fmt.locale.decimal_formats[None].pattern.split(";")[0]).split(".")[0]
    pattern += "." + "0" * decimals if decimals else ""
    return babel_numbers.format_decimal(number, format=pattern, locale=fmt.locale)


def f_currency(value: Any, currency: str) -> str:
    fmt = _CURRENT.get(_ENGLISH)
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise FilterError(f"currency: expected a currency code such as EUR, got {currency!r}")
    return babel_numbers.format_currency(_decimal(value, "currency"), currency.upper(), locale=fmt.locale)


def _clear(name: str, function: Callable[..., str]) -> Callable[..., str]:
    """A Babel complaint (a bad pattern, say) as a FilterError naming the filter."""

    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> str:
        try:
            return function(*args, **kwargs)
        except FilterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FilterError(f"{name}: {exc}") from None

    return wrapped


_RAW: dict[str, Callable[..., str]] = {
    "datetime": f_datetime,
    "date": f_date,
    "time": f_time,
    "number": f_number,
    "currency": f_currency,
}
FILTERS: dict[str, Callable[..., str]] = {name: _clear(name, function) for name, function in _RAW.items()}
