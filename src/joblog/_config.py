"""Constants more than one layer needs, each written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_URL", "MAX_BIGINT", "MAX_ID_LENGTH", "parse_duration", "parse_timestamp"]

#: The database when none is given: a SQLite file in the working directory.
DEFAULT_URL = "sqlite:///joblog.db"

#: No resolution tier holds a longer ID (the ID columns are VARCHAR(255) at most).
MAX_ID_LENGTH = 255

#: The largest value of a BIGINT column (event and step IDs, cursors).
MAX_BIGINT = 2**63 - 1

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str) -> timedelta:
    """'30d', '12h', '15m', '90s' or plain seconds; ValueError for anything else."""
    text = str(value).strip().lower()
    unit = text[-1:] if text[-1:] in _UNITS else "s"
    number = text[:-1] if text[-1:] in _UNITS else text
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"{value!r} is not a duration like 30d, 12h, 15m or 90s") from None
    if not 0 < amount <= 1e9:
        raise ValueError(f"{value!r} must be a positive duration")
    return timedelta(seconds=amount * _UNITS[unit])


def parse_timestamp(value: str) -> datetime:
    """ISO-8601 (``Z`` or an offset; naive means UTC) as an aware UTC datetime;
    ValueError for anything else, a date out of the calendar's range included."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not an ISO-8601 time like 2026-01-31T12:00:00Z") from None
