"""Calendar periods in an IANA time zone (zoneinfo): where an hour, day, week, month or year starts and ends.

A port of packages/typescript/src/saas/calendar.ts; spec/saas/vectors/calendar.json pins both (spec/saas/README.md §1).
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

from halt.core.errors import HaltConfigError

__all__ = ["PERIODS", "PeriodBounds", "QuotaPeriod", "check_time_zone", "instant_of", "period_bounds"]


class QuotaPeriod:
    """The calendar periods a quota can reset on. Use these constants rather than raw strings."""

    HOURLY = "hourly"
    DAILY = "daily"
    #: ISO weeks: Monday 00:00 to the next Monday 00:00.
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"

    ALL = ("hourly", "daily", "weekly", "monthly", "yearly")


PERIODS = QuotaPeriod.ALL


class PeriodBounds(NamedTuple):
    """One period: ``[start_ms, end_ms)`` in epoch milliseconds."""

    start_ms: int
    end_ms: int


_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    """The zone of an IANA name; a HaltConfigError for a name zoneinfo does not know."""
    if name == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as e:  # ZoneInfoNotFoundError is a KeyError; a malformed name a ValueError
        raise _unknown(name) from e


def _unknown(name: str) -> HaltConfigError:
    return HaltConfigError(
        "HALT_INVALID_TIME_ZONE",
        f"unknown time zone {name!r}. Fix: use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'.",
    )


def check_time_zone(time_zone: object) -> str:
    """Check a time zone name (at configuration time); returns it."""
    if not isinstance(time_zone, str) or len(time_zone) == 0:
        raise HaltConfigError(
            "HALT_INVALID_TIME_ZONE",
            f"time_zone must be an IANA name such as 'UTC' or 'Europe/Berlin', got {time_zone!r}.",
        )
    _zone(time_zone)
    return time_zone


def _ms(wall: datetime) -> int:
    """A naive datetime read as UTC, in epoch ms."""
    return (wall - _EPOCH) // timedelta(milliseconds=1)


def _wall_clock(t: float, time_zone: str) -> int:
    """The wall-clock time of instant ``t`` in ``time_zone``, written as if it were UTC (ms, whole seconds)."""
    local = datetime.fromtimestamp(math.floor(t / 1000), _zone(time_zone))
    return _ms(local.replace(tzinfo=None))


def _offset_at(t: float, time_zone: str) -> int:
    """The zone's offset at ``t`` (ms, local minus UTC)."""
    whole = math.floor(t / 1000) * 1000
    return _wall_clock(whole, time_zone) - whole


def instant_of(wall: int, time_zone: str) -> int:
    """The first instant whose wall-clock time in ``time_zone`` is at or after ``wall`` (a wall-clock time written
    as UTC ms): the instant itself when it exists once, the earlier of two in a repeated hour (clocks set back),
    and the end of the gap when clocks skip it (spec/saas/README.md §1)."""
    offsets = {
        _offset_at(wall - _DAY_MS, time_zone),
        _offset_at(wall, time_zone),
        _offset_at(wall + _DAY_MS, time_zone),
    }
    candidates = [wall - o for o in offsets if _offset_at(wall - o, time_zone) == o]
    if candidates:
        return min(candidates)
    # In a gap: search the transition, the first second whose wall-clock time is at or after ``wall``.
    lo = math.floor((wall - max(offsets)) / 1000)  # wall clock before ``wall``
    hi = math.ceil((wall - min(offsets)) / 1000)  # wall clock at or after ``wall``
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall_clock(mid * 1000, time_zone) >= wall:
            hi = mid
        else:
            lo = mid
    return hi * 1000


def period_bounds(period: str, t: float, time_zone: str = "UTC") -> PeriodBounds:
    """The period of kind ``period`` that holds instant ``t`` (epoch ms) in ``time_zone``: it starts at the calendar
    boundary (the hour, midnight, Monday midnight, the 1st at midnight, January 1st at midnight) and ends at the
    next one.

    Example::

        period_bounds("monthly", 1771070400000, "UTC")  # 2026-02-14: PeriodBounds(start_ms=1769904000000, ...)
    """
    wall = _EPOCH + timedelta(milliseconds=_wall_clock(t, time_zone))
    day = datetime(wall.year, wall.month, wall.day)
    if period == "hourly":
        start = day.replace(hour=wall.hour)
        end = start + timedelta(hours=1)
    elif period == "daily":
        start = day
        end = day + timedelta(days=1)
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())  # weekday(): days since Monday
        end = start + timedelta(days=7)
    elif period == "monthly":
        start = day.replace(day=1)
        end = datetime(wall.year + 1, 1, 1) if wall.month == 12 else datetime(wall.year, wall.month + 1, 1)
    elif period == "yearly":
        start = datetime(wall.year, 1, 1)
        end = datetime(wall.year + 1, 1, 1)
    else:
        raise HaltConfigError(
            "HALT_INVALID_QUOTA", f"unknown quota period {period!r}. Fix: use one of {', '.join(PERIODS)}."
        )
    if time_zone == "UTC":
        return PeriodBounds(_ms(start), _ms(end))
    return PeriodBounds(instant_of(_ms(start), time_zone), instant_of(_ms(end), time_zone))
