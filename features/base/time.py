"""UTC date helpers: every cutoff, as-of date and month boundary is a UTC midnight."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from features.base.errors import BadInputError

UTC = dt.UTC


def to_utc(value: str | dt.date | dt.datetime) -> dt.datetime:
    """Parse a date or timestamp as a timezone-aware UTC datetime (naive values are UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_midnight(value: str | dt.date | dt.datetime) -> dt.datetime:
    """The UTC midnight that starts the given day."""
    ts = to_utc(value)
    return dt.datetime(ts.year, ts.month, ts.day, tzinfo=UTC)


def month_start(value: str | dt.date | dt.datetime) -> dt.datetime:
    """The UTC month start of the month containing `value`."""
    return utc_midnight(value).replace(day=1)


def next_month(m: dt.datetime) -> dt.datetime:
    """The month start after month start `m`."""
    return (m.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def as_of_date(value: str | dt.date | dt.datetime) -> pd.Timestamp:
    """An as-of date: '2025-12-01' (or an ISO timestamp) -> the UTC midnight starting that day.

    The one type of an as-of date from the command line to the alerts; a scoring or alert run
    at `as_of` reads only data strictly before it.
    """
    try:
        return pd.Timestamp(utc_midnight(value))
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"as-of date {value!r}: expected a date such as 2025-12-01") from exc


def day_after(latest: str | dt.date | dt.datetime) -> pd.Timestamp:
    """The as-of date that sees every record up to `latest`: the UTC midnight after its day."""
    return as_of_date(latest) + pd.Timedelta(days=1)
