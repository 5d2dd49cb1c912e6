"""``joblog jobs``: list jobs, or show one by any ID with its steps.

(``joblog logs`` lives in :mod:`joblog.cli.logs`; this module re-exports it because the
command registry names this module for it.)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from joblog.api.serialize import job_to_dict, summary_to_dict
from joblog.cli.common import (
    SINCE,
    age,
    comma_list,
    duration,
    fail_cleanly,
    plain,
    read_store,
    terminal,
    text_option,
    url_option,
)
from joblog.cli.logs import logs_command
from joblog.exceptions import JobLogError
from joblog.model import JobStatus
from joblog.resolve import Resolver
from joblog.storage.queries import JobFilter

__all__ = ["jobs_command", "logs_command"]

_STATUS_STYLE = {
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "pending": "dim",
}
_STATUSES = [s.value for s in JobStatus if s is not JobStatus.UNKNOWN]


def _json_line(value: Any) -> None:
    """One JSON object, ASCII-only: no byte of the data can act on a terminal."""
    click.echo(json.dumps(value, ensure_ascii=True))


@click.command("jobs")
@url_option
@click.option(
    "--status",
    multiple=True,
    help="Only jobs in these statuses: " + ", ".join(_STATUSES) + " (repeat or use commas).",
)
@click.option("--type", "job_type", help="Only jobs of this job_type.")
@click.option("--context", "context_id", help="Only jobs of this context_id (e.g. a VM).")
@click.option("--prefix", "external_id_prefix", help="External ID prefix.")
@click.option(
    "--since",
    type=SINCE,
    help="Only jobs created at or after this time: ISO-8601 (naive is UTC) or a duration"
    " back from now (15m, 2h, 3d).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="The newest N jobs.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="NDJSON: the API's job object per line (one job: its summary object).",
)
@click.option(
    "--wide",
    is_flag=True,
    help="Never fold a cell, even on a terminal (the default when output is not a terminal).",
)
@click.argument("job_id", required=False)
def jobs_command(
    url: str,
    status: tuple[str, ...],
    job_type: str | None,
    context_id: str | None,
    external_id_prefix: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
    wide: bool,
    job_id: str | None,
) -> None:
    """List jobs newest first, or show one job (by any ID, the API's resolver) with its
    steps. IDs are never cut: on a narrow terminal they fold onto more lines, and --wide
    (the default in a pipe) keeps every row on one line. Data is plain text: markup is
    printed as written and control characters as escapes."""
    status = comma_list(status)
    unknown = [value for value in status if value not in _STATUSES]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(map(repr, unknown))} (choose from {', '.join(_STATUSES)})",
            param_hint="--status",
        )
    job_type = text_option("--type", job_type)
    context_id = text_option("--context", context_id)
    external_id_prefix = text_option("--prefix", external_id_prefix)
    console = terminal(wide=wide)
    store = read_store(url)
    try:
        try:
            if job_id is not None:
                _show_job(console, Resolver(store), job_id, as_json)
                return
            jobs = store.reads.list_jobs(
                JobFilter(
                    status=status,
                    job_type=job_type,
                    context_id=context_id,
                    external_id_prefix=external_id_prefix,
                    since=since,
                ),
                limit=limit,
            )
        finally:
            store.close()
    except JobLogError as error:
        raise fail_cleanly(error) from error
    if as_json:
        for job in jobs:
            _json_line(job_to_dict(job))
        return
    # IDs wrap (fold) instead of being cut with an ellipsis: a cut ID cannot be pasted.
    table = Table(
        "started",
        "status",
        "%",
        "type",
        Column("external ID", overflow="fold"),
        Column("job ID", overflow="fold", min_width=36),
    )
    for job in jobs:
        style = _STATUS_STYLE.get(job.status.value, "")
        table.add_row(
            age(job.created_at),
            Text(job.status.value, style=style),
            str(job.percent_complete),
            plain(f"{job.job_type}/{job.operation}"),
            plain(job.external_job_id or "-"),
            plain(job.id),
        )
    console.print(table)


def _show_job(console: Console, resolver: Resolver, any_id: str, as_json: bool) -> None:
    summary = resolver.resolve(any_id)
    job = summary.job
    if as_json:
        _json_line(summary_to_dict(summary))
        return
    style = _STATUS_STYLE.get(job.status.value, "")
    console.print(
        Text.assemble(
            plain(job.external_job_id or job.id, "bold"),
            "  ",
            Text(job.status.value, style=style),
            f"  {summary.progress.percent}%  (found by {summary.resolved_by.value})",
        )
    )
    console.print(
        Text.assemble(
            "job ",
            plain(f"{job.id}  {job.job_type}/{job.operation}"),
            f"  elapsed {duration(summary.elapsed_seconds)}  ETA {duration(summary.eta_seconds)}",
        )
    )
    if job.error_message:
        console.print(plain(job.error_message, "red"))
    table = Table("#", "step", "status", "duration", "error")
    for step in summary.steps:
        table.add_row(
            str(step.seq or ""),
            plain(step.name),
            step.status.value,
            duration(step.duration_seconds),
            plain(step.error_message or ""),
        )
    console.print(table)
