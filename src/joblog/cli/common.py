"""Options and helpers shared by the ``joblog`` sub-commands."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.core import ParameterSource
from rich.console import Console
from rich.text import Text

from joblog._config import DEFAULT_URL, parse_duration, parse_timestamp
from joblog.exceptions import JobLogError

if TYPE_CHECKING:
    from joblog.storage.store import Store

__all__ = [
    "DEFAULT_URL",
    "DURATION",
    "EXIT_BROKEN_PIPE",
    "SINCE",
    "Target",
    "age",
    "comma_list",
    "duration",
    "escaped",
    "fail_cleanly",
    "plain",
    "quiet_broken_pipe",
    "read_store",
    "server_options",
    "target",
    "terminal",
    "text_option",
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


def server_options(fn: F) -> F:
    """``--server`` and ``--token``: go through a joblog server instead of the database."""
    fn = click.option(
        "--token",
        envvar="JOBLOG_TOKEN",
        show_envvar=True,
        help="Bearer token for --server: a read token, or a write token to cancel.",
    )(fn)
    return click.option(
        "--server",
        envvar="JOBLOG_SERVER",
        show_envvar=True,
        metavar="URL",
        help="A joblog server (http://host:8080) to go through instead of the database;"
        " --url on the command line wins over JOBLOG_SERVER.",
    )(fn)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command reads or writes: a database URL, or a joblog server and a token."""

    url: str
    server: str | None = None
    token: str | None = None


def target(url: str, server: str | None, token: str | None) -> Target:
    """The database, unless a server is named (``--server`` or JOBLOG_SERVER) and
    ``--url`` was not given on the command line; both on the command line is an error."""
    ctx = click.get_current_context()
    url_given = ctx.get_parameter_source("url") is ParameterSource.COMMANDLINE
    server = (server or "").strip() or None
    if server is None or url_given:
        if server is not None and ctx.get_parameter_source("server") is ParameterSource.COMMANDLINE:
            raise click.UsageError("give --url or --server, not both")
        return Target(url)
    if not _is_server_url(server):
        raise click.BadParameter(
            f"'{escaped(server)}' is not an http:// or https:// URL", param_hint="--server"
        )
    if token and not (token.isascii() and token.isprintable()):
        raise click.BadParameter("a token is printable ASCII", param_hint="--token")
    return Target(url, server.rstrip("/"), token or None)


def _is_server_url(server: str) -> bool:
    import httpx

    try:
        parsed = httpx.URL(server)
    except (httpx.InvalidURL, ValueError, TypeError):
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


def text_option(name: str, value: str | None) -> str | None:
    """A free-text option as storable text: a NUL or a lone surrogate (which a shell can
    pass from undecodable bytes) is a usage error, not a database or encoding error."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise click.BadParameter("not UTF-8 text", param_hint=name) from None
    if "\x00" in value:
        raise click.BadParameter("holds a NUL character", param_hint=name)
    return value


def fail_cleanly(error: JobLogError) -> click.ClickException:
    return click.ClickException(plain(str(error)).plain)


#: What a terminal would act on rather than show: C0 controls but tab and newline (a
#: carriage return included), DEL and C1; line and paragraph separators; the marks that
#: reorder text (bidi overrides and isolates); lone surrogates (not text at all).
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escaped(value: object) -> str:
    """``value`` as text with every :data:`_CONTROL` character written as an escape."""
    return _CONTROL.sub(_escape, str(value))


def plain(value: object, style: str = "") -> Text:
    """Data for the terminal: never Rich markup (``[/]``, ``[link=...]`` stay text) and
    no control character (an ESC from a log message is shown as ``\\x1b``, not run)."""
    return Text(escaped(value), style=style)


#: The width of the output when it is not a terminal, or with ``--wide``: no table cell
#: is cut or folded, so every ID stays whole on its line.
WIDE = 4096


#: The exit status when the reader of the output went away (``| head``): what a shell
#: reports for a writer ended by SIGPIPE, never 1, which ``logs --follow`` means as "failed".
EXIT_BROKEN_PIPE = 141


def quiet_broken_pipe() -> NoReturn:
    """Stop at once and quietly, and let the interpreter's last flush of stdout go nowhere
    instead of raising again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(EXIT_BROKEN_PIPE)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True
        quiet_broken_pipe()


def terminal(*, wide: bool = False, stderr: bool = False) -> Console:
    """The console for data: no highlighting; when the output is not a terminal (a pipe, a
    file) or ``wide``, wide enough that no table cell is cut, so IDs can be copied whole;
    on a terminal, long IDs fold onto more lines (never an ellipsis)."""
    console = _Console(highlight=False, stderr=stderr)
    if wide or not console.is_terminal:
        console.width = WIDE
    return console


def comma_list(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--status running,failed`` and ``--status running --status failed`` alike."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def read_store(url: str) -> Store:
    """A Store for a read-only command: never creates a database or its tables (a
    mistyped URL is an error, not an empty new database that looks like "no jobs")."""
    import sqlalchemy as sa

    from joblog.storage.engine import storage_errors
    from joblog.storage.migrate import missing_database
    from joblog.storage.store import Store

    try:
        missing = missing_database(url)
        if missing is not None:
            raise click.ClickException(
                f"no joblog database at {escaped(missing)} (check --url or JOBLOG_DATABASE_URL)"
            )
        store = Store(url, auto_migrate=False)
    except JobLogError as error:
        raise fail_cleanly(error) from error
    try:
        with storage_errors("opening the database"):
            present = sa.inspect(store.reads.engine).has_table("job_tracking")
    except JobLogError as error:
        store.close()
        raise fail_cleanly(error) from error
    if not present:
        store.close()
        shown = store.url.render_as_string(hide_password=True)
        raise click.ClickException(
            f"{escaped(shown)} has no joblog tables (joblog db upgrade creates them)"
        )
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


class SinceType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A moment: ISO-8601 (``2026-01-31T12:00:00Z``; naive means UTC) or a duration
    back from now (``15m``, ``2h``, ``3d``; a plain number is seconds)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        shown = f"'{escaped(text)}'"
        if _DURATION.fullmatch(text):
            try:
                return datetime.now(UTC) - parse_duration(text)
            except ValueError as error:
                self.fail(escaped(error), param, ctx)
            except OverflowError:
                self.fail(f"{shown} reaches back before the year 1", param, ctx)
        try:
            return parse_timestamp(text)
        except ValueError:
            self.fail(
                f"{shown} is neither an ISO-8601 time (2026-01-31T12:00:00Z)"
                " nor a duration back from now (15m, 2h, 3d)",
                param,
                ctx,
            )


_DURATION = re.compile(r"[0-9.]+\s*[smhdw]?", re.IGNORECASE)
SINCE = SinceType()
