"""Options and helpers shared by the ``joblog`` sub-commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click

from joblog._config import DEFAULT_URL
from joblog.exceptions import JobLogError

__all__ = ["DEFAULT_URL", "DURATION", "age", "duration", "fail_cleanly", "url_option"]

F = TypeVar("F", bound=Callable[..., Any])


def url_option(fn: F) -> F:
    """``--url``, falling back to JOBLOG_DATABASE_URL, then a local SQLite file."""
    return click.option(
        "--url",
        envvar="JOBLOG_DATABASE_URL",
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="Database URL.",
    )(fn)


def fail_cleanly(error: JobLogError) -> click.ClickException:
    return click.ClickException(str(error))


def age(moment: datetime | None) -> str:
    """'3s ago', '5m ago', ... for a table cell."""
    if moment is None:
        return "-"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{max(int(seconds), 0)}s ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=round(seconds)))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class DurationType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """'30d', '12h', '15m', '90s' or plain seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in _UNITS else "s"
        number = text[:-1] if text[-1:] in _UNITS else text
        try:
            amount = float(number)
        except ValueError:
            self.fail(f"{value!r} is not a duration like 30d, 12h, 15m or 90s", param, ctx)
        if not 0 < amount <= 1e9:
            self.fail(f"{value!r} must be a positive duration", param, ctx)
        return timedelta(seconds=amount * _UNITS[unit])


DURATION = DurationType()
