"""The business clock of the operations view: how much working time lies between two instants.

An exception raised Friday 17:30 and read Monday 10:00 has waited 1 business hour with 9-17 working hours,
not 64.5 wall-clock hours: that is the age its SLA is measured in. Working hours are local to
``OperationsSettings.timezone`` (daylight saving included: a working day is 09:00-17:00 on the wall clock,
whatever its UTC offset that day), on ``OperationsSettings.working_days``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apis.config import OperationsSettings

__all__ = ["MAX_SPAN", "business_seconds", "sla_breached"]

# Business time is counted day by day, up to this span: any SLA is long breached by then, and a clock seam
# set centuries ahead must not cost a loop per day.
MAX_SPAN = dt.timedelta(days=3660)


def _local(day: dt.date, hour: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    # 24:00 is the next day's midnight. In UTC: arithmetic between two datetimes of one zone is wall-clock
    # arithmetic in Python, which would miscount a day with a daylight-saving change.
    if hour == 24:
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone).astimezone(dt.UTC)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=zone).astimezone(dt.UTC)


def business_seconds(start: dt.datetime, end: dt.datetime, settings: OperationsSettings) -> int:
    """Working seconds between ``start`` and ``end`` (timezone-aware); 0 when ``end`` is not after it.
    Counted over at most ``MAX_SPAN`` (about 10 years) from ``start``."""
    if end <= start:
        return 0
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    end = min(end, start + MAX_SPAN)
    zone = zoneinfo.ZoneInfo(settings.timezone)
    weekdays = settings.weekdays
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    total = 0.0
    while day <= last:
        if day.isoweekday() in weekdays:
            opens = _local(day, settings.start_hour, zone)
            closes = _local(day, settings.end_hour, zone)
            overlap = (min(closes, end) - max(opens, start)).total_seconds()
            if overlap > 0:
                total += overlap
        day += dt.timedelta(days=1)
    return int(total)


def sla_breached(business_age_seconds: int, sla_hours: float) -> bool:
    """An exception breaches its SLA once it has waited longer than the SLA's business hours."""
    return business_age_seconds > sla_hours * 3600
