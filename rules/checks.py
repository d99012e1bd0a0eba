"""Small shape checks shared by the validators: each reports and returns None on failure."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from rules.durations import parse_duration
from rules.model import Channel, QuietHours, StopEvent
from rules.problems import Problems
from rules.yamlpos import Path

CHANNELS = ", ".join(c.value for c in Channel)
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def mapping(
    p: Problems, path: Path, value: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """Check a mapping's keys: every unknown key and every missing required key is reported."""
    if not isinstance(value, dict):
        p.add(path, f"expected a mapping with keys {', '.join(allowed)}, got {describe(value)}")
        return None
    for key in value:
        if key not in allowed:
            p.add((*path, key), f"unknown key {key!r} (expected one of {', '.join(allowed)})", at_key=True)
    for key in required:
        if key not in value:
            p.add(path, f"missing required key {key!r}")
    return value


def channel(p: Problems, path: Path, value: Any, *, at_key: bool = False) -> Channel | None:
    if not isinstance(value, str):
        p.add(path, f"expected a channel (one of {CHANNELS}), got {describe(value)}", at_key=at_key)
        return None
    try:
        return Channel(value)
    except ValueError:
        p.add(path, f"unknown channel {value!r} (expected one of {CHANNELS})", at_key=at_key)
        return None


def channel_list(p: Problems, path: Path, value: Any, *, minimum: int = 1) -> list[Channel] | None:
    items = value if isinstance(value, list) else [value]
    if len(items) < minimum:
        p.add(
            path, "expected at least one channel" if minimum == 1 else f"expected a list of at least {minimum} channels"
        )
        return None
    found: list[Channel] = []
    for i, item in enumerate(items):
        item_path = (*path, i) if isinstance(value, list) else path
        ch = channel(p, item_path, item)
        if ch is None:
            continue
        if ch in found:
            p.add(item_path, f"channel {ch} is listed twice")
            continue
        found.append(ch)
    return found if len(found) == len(items) else None


def duration(p: Problems, path: Path, value: Any) -> timedelta | None:
    if not isinstance(value, str):
        p.add(path, f"expected a duration such as 30s, 15m, 1h or 2d, got {describe(value)}")
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        p.add(path, str(exc))
        return None


def clock(p: Problems, path: Path, value: Any) -> time | None:
    if not isinstance(value, str):
        p.add(path, f'expected a time HH:MM on a 24-hour clock, e.g. "21:00", got {describe(value)}')
        return None
    match = _HHMM.match(value)
    if not match:
        p.add(path, f'invalid time {value!r} (expected HH:MM on a 24-hour clock, e.g. "21:00")')
        return None
    return time(int(match[1]), int(match[2]))


def quiet_hours(p: Problems, path: Path, value: Any) -> QuietHours | None:
    raw = mapping(p, path, value, ("start", "end"), ("start", "end"))
    if raw is None or "start" not in raw or "end" not in raw:
        return None
    start, end = clock(p, (*path, "start"), raw["start"]), clock(p, (*path, "end"), raw["end"])
    if start is None or end is None:
        return None
    if start == end:
        p.add(path, "quiet hours start and end at the same time")
        return None
    return QuietHours(start=start, end=end)


def stop_events(p: Problems, path: Path, value: Any) -> tuple[StopEvent, ...] | None:
    if not isinstance(value, list) or not value:
        p.add(path, f"expected a list of events, e.g. [responded] (events: {events_list()})")
        return None
    found: list[StopEvent] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            p.add((*path, i), f"expected an event (one of {events_list()}), got {describe(item)}")
            continue
        try:
            found.append(StopEvent(item))
        except ValueError:
            p.add((*path, i), f"unknown event {item!r} (expected one of {events_list()})")
    return tuple(found) if len(found) == len(value) else None


def events_list() -> str:
    return ", ".join(e.value for e in StopEvent)


def fallback_map(p: Problems, path: Path, value: Any) -> dict[Channel, Channel] | None:
    if not isinstance(value, dict):
        p.add(path, f"expected a mapping of channel to channel, e.g. {{push: sms}}, got {describe(value)}")
        return None
    result: dict[Channel, Channel] = {}
    for key, target in value.items():
        source = channel(p, (*path, key), key, at_key=True)
        dest = channel(p, (*path, key), target)
        if source is None or dest is None:
            continue
        if source is dest:
            p.add((*path, key), f"channel {source} falls back to itself")
            continue
        result[source] = dest
    return result


def fallback_cycles(p: Problems, path: Path, fallbacks: dict[Channel, Channel]) -> bool:
    """Report every cycle once (push -> sms -> push); True when there is none."""
    reported: set[frozenset[Channel]] = set()
    for start in fallbacks:
        seen = [start]
        current = fallbacks.get(start)
        while current is not None and current not in seen:
            seen.append(current)
            current = fallbacks.get(current)
        if current is None:
            continue
        cycle = seen[seen.index(current) :]
        if frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            chain = " -> ".join([*cycle, cycle[0]])
            p.add(path, f"fallback cycle {chain}")
    return not reported


def name(p: Problems, path: Path, value: Any, what: str) -> str | None:
    if not isinstance(value, str):
        p.add(path, f"expected a {what} name, got {describe(value)}")
        return None
    if not NAME.match(value):
        p.add(path, f"invalid {what} name {value!r} (lowercase letters, digits, '-', '_', '.'; at most 64)")
        return None
    return value


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, (date, datetime)):
        return f"the date {value.isoformat()}"  # YAML reads an unquoted 2024-01-01 as a date
    return f"{type(value).__name__} {value!r}"
