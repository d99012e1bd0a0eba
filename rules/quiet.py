"""Quiet hours: when a non-urgent step falls inside them, it waits for their end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rules.model import QuietHours


def defer(quiet: QuietHours | None, zone: ZoneInfo, due: datetime) -> datetime:
    """`due` itself when outside quiet hours, else the end of this quiet period (UTC).

    Times are wall-clock times in `zone`, so a window keeps its meaning across a
    DST change.
    """
    if quiet is None:
        return due
    # A quiet period's end can land inside the next one when the clocks jump
    # over the whole open window (quiet 02:15-02:00, the night 02:00 becomes
    # 03:00): then the send waits for the following end. Two jumps never fall
    # within a day, so the second end is outside.
    once = _period_end(quiet, zone, due)
    return once if once == due else _period_end(quiet, zone, once)


def _period_end(quiet: QuietHours, zone: ZoneInfo, due: datetime) -> datetime:
    local = due.astimezone(zone)
    now_t = local.time().replace(tzinfo=None)
    start, end = quiet.start, quiet.end
    if start < end:
        inside = start <= now_t < end
        end_day = local.date()
    else:  # the window crosses midnight
        inside = now_t >= start or now_t < end
        end_day = local.date() + timedelta(days=1) if now_t >= start else local.date()
    if not inside:
        return due
    # A wall time inside a spring-forward gap (02:30 on the night clocks jump
    # from 02:00 to 03:00) resolves as if the clocks had not moved: 03:30.
    wall = datetime.combine(end_day, end, tzinfo=zone)
    # An end repeated on the night clocks go back (02:30 twice) ends the quiet
    # period containing `due`: the second 02:30 when `due` is past the first.
    first = wall.astimezone(UTC)
    return first if first > due else max(wall.replace(fold=1).astimezone(UTC), due)
