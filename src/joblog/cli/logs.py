"""``joblog logs``: a job's log events, the newest first chosen, printed oldest first;
``--follow`` tails the job's stream until it ends."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from joblog.cli.common import (
    SINCE,
    comma_list,
    quiet_broken_pipe,
    server_options,
    target,
    text_option,
    url_option,
)
from joblog.cli.follow import (
    EXIT_INTERRUPTED,
    EXIT_TROUBLE,
    Follower,
    LogPrinter,
    StepSelection,
    steps_of,
)
from joblog.cli.sources import open_source
from joblog.cli.sse import StreamGarbage
from joblog.model import Level
from joblog.storage.queries import EventFilter

__all__ = ["logs_command"]

_FOLLOW_FLAGS = ("-f", "--follow")


class _LogsCommand(click.Command):
    """With ``--follow``, a usage error exits EXIT_TROUBLE: click's 2 would read as
    "the job was cancelled" to a script that waits on the job."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        following = any(arg in _FOLLOW_FLAGS for arg in args)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as error:
            if following:
                error.exit_code = EXIT_TROUBLE  # type: ignore[misc]  # a ClassVar in the stubs
            raise


@click.command("logs", cls=_LogsCommand)
@url_option
@server_options
@click.option(
    "--level",
    "min_level",
    default="DEBUG",
    show_default=True,
    help="Minimum level: DEBUG, INFO, WARN or ERROR.",
)
@click.option("--contains", help="Only messages containing this text (any case).")
@click.option(
    "--step",
    "steps",
    multiple=True,
    help="Only events of these steps, by name or number (repeat or use commas).",
)
@click.option(
    "--since",
    type=SINCE,
    help="Only events at or after this time: ISO-8601 (naive is UTC) or a duration back"
    " from now (15m, 2h, 3d).",
)
@click.option(
    "--limit",
    type=click.IntRange(0, 100_000),
    default=200,
    show_default=True,
    help="Print the newest N matching events (oldest first); with --follow, 0 prints"
    " only new ones.",
)
@click.option("--json", "as_json", is_flag=True, help="NDJSON: the API's event object per line.")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Then print new events as they come until the job ends (exit status below).",
)
@click.argument("job_id")
def logs_command(
    url: str,
    server: str | None,
    token: str | None,
    min_level: str,
    contains: str | None,
    steps: tuple[str, ...],
    since: datetime | None,
    limit: int,
    as_json: bool,
    follow: bool,
    job_id: str,
) -> None:
    """Print a job's log events; the job by any ID (the API's resolver: UUID, external
    ID, context ID, an events-only ID, a legacy failover ID).

    Lines are plain text: markup is printed as written and control characters as
    escapes (\\x1b), so a message cannot restyle or clear the terminal.

    --follow reads the job's live stream, the one the dashboard reads: on a database URL
    the server's stream code runs in this process (it needs joblog[server]); with
    --server (or JOBLOG_SERVER) it is the server's /stream, resumed with Last-Event-ID
    after a dropped connection. It exits when the job ends, with the job's status:

    \b
      0  completed     1  failed     2  cancelled
      3  no such job, no server, a bad option or answer
      130  interrupted (Ctrl-C)

    A job known only from its log events never ends: follow it until Ctrl-C.
    """
    try:
        _logs(url, server, token, min_level, contains, steps, since, limit, as_json, follow, job_id)
    except click.ClickException as error:
        if follow:
            error.exit_code = EXIT_TROUBLE  # type: ignore[misc]  # a ClassVar in the stubs
        raise
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # --json goes through click.echo, not the console
        quiet_broken_pipe()


def _logs(
    url: str,
    server: str | None,
    token: str | None,
    min_level: str,
    contains: str | None,
    step_values: tuple[str, ...],
    since: datetime | None,
    limit: int,
    as_json: bool,
    follow: bool,
    job_id: str,
) -> None:
    try:
        level = Level.parse(min_level)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--level") from error
    if limit == 0 and not follow:
        raise click.BadParameter(
            "0 prints nothing; it is for --follow (only new events)", param_hint="--limit"
        )
    where = target(url, server, token)
    contains = text_option("--contains", contains) or None
    selection = StepSelection(
        comma_list(tuple(text_option("--step", v) or "" for v in step_values))
    )
    filters = EventFilter(min_level=level, since=since, contains=contains)
    printer = LogPrinter(as_json=as_json)
    source = open_source(where, job_id)
    try:
        if follow:
            code = source.follow(Follower(source, printer, filters, selection, limit))
            click.get_current_context().exit(code)
        if selection:
            job_steps = steps_of(source.summary())
            selection.check(job_steps)
            ids = selection.step_ids(job_steps)
            if not ids:
                return  # the chosen steps have not started: they have no events yet
            filters = EventFilter(min_level=level, step_ids=ids, since=since, contains=contains)
        printer.print(source.newest_events(filters, None, limit))
    except StreamGarbage as error:
        raise click.ClickException(f"not a joblog answer: {error}") from error
    finally:
        source.close()
