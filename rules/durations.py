"""Durations as operators write them: 30s, 15m, 1h, 2d (and combinations like 1h30m)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"(?:\d+[smhd])+")


def parse_duration(text: object) -> timedelta:
    """Parse `15m`, `1h30m`, ...; raise ValueError with an operator-facing message."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text.strip()):
        raise ValueError(
            f"invalid duration {text!r} (expected a number and a unit s, m, h or d, e.g. 30s, 15m, 1h, 2d)"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text.strip()))
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return timedelta(seconds=seconds)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, rounded up: a due time stored in ms must never fire early."""
    return -((_EPOCH - moment) // _MS)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
