"""Options and helpers shared by the ``joblog`` sub-commands."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from joblog._config import DEFAULT_URL, parse_duration
from joblog.exceptions import JobLogError

if TYPE_CHECKING:
    from joblog.storage.store import Store

__all__ = [
    "DEFAULT_URL",
    "DURATION",
    "age",
    "comma_list",
    "duration",
    "fail_cleanly",
    "plain",
    "read_store",
    "terminal",
    "url_option",
]

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
    return click.ClickException(plain(str(error)).plain)


#: C0 controls but tab and newline, DEL and C1: what a terminal would act on.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: object, style: str = "") -> Text:
    """Data for the terminal: never Rich markup (``[/]``, ``[link=...]`` stay text) and
    no control character (an ESC from a log message is shown as ``\\x1b``, not run)."""
    text = _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", str(value))
    return Text(text, style=style)


def terminal() -> Console:
    """The console for data: no highlighting; when the output is not a terminal (a pipe, a
    file), wide enough that no table cell is cut, so IDs can always be copied whole."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 4096
    return console


def comma_list(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--status running,failed`` and ``--status running --status failed`` alike."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def read_store(url: str) -> Store:
    """A Store for a read-only command: never creates a database or its tables (a
    mistyped URL is an error, not an empty new database that looks like "no jobs")."""
    import sqlalchemy as sa

    from joblog.storage.engine import parse_url
    from joblog.storage.store import Store

    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            pass
        elif not Path(database).is_file():
            raise click.ClickException(
                f"no joblog database at {database} (check --url or JOBLOG_DATABASE_URL)"
            )
    store = Store(url, auto_migrate=False)
    try:
        if not sa.inspect(store.engine).has_table("job_tracking"):
            raise click.ClickException(
                f"{parsed.render_as_string(hide_password=True)} has no joblog tables"
                " (joblog db upgrade creates them)"
            )
    except JobLogError as error:
        store.close()
        raise fail_cleanly(error) from error
    except click.ClickException:
        store.close()
        raise
    except sa.exc.SQLAlchemyError as error:
        store.close()
        name = error.__class__.__name__
        raise click.ClickException(f"cannot read the database: {name}") from error
    return store


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


class DurationType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """'30d', '12h', '15m', '90s' or plain seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()
