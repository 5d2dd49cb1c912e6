"""``joblog jobs`` and ``joblog logs``: look at jobs and their events from a terminal."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from joblog.cli.common import (
    age,
    comma_list,
    duration,
    fail_cleanly,
    plain,
    read_store,
    terminal,
    url_option,
)
from joblog.exceptions import JobLogError, JobNotFound
from joblog.model import JobStatus, Level
from joblog.resolve import Resolver
from joblog.storage.queries import EventFilter, JobFilter

__all__ = ["jobs_command", "logs_command"]

_STATUS_STYLE = {
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "pending": "dim",
}
_STATUSES = [s.value for s in JobStatus if s is not JobStatus.UNKNOWN]
_LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARN": "yellow", "ERROR": "bold red"}


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
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.argument("job_id", required=False)
def jobs_command(
    url: str,
    status: tuple[str, ...],
    job_type: str | None,
    context_id: str | None,
    external_id_prefix: str | None,
    limit: int,
    as_json: bool,
    job_id: str | None,
) -> None:
    """List jobs newest first, or show one job (by any ID) with its steps."""
    status = comma_list(status)
    unknown = [value for value in status if value not in _STATUSES]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(map(repr, unknown))} (choose from {', '.join(_STATUSES)})",
            param_hint="--status",
        )
    console = terminal()
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
                ),
                limit=limit,
            )
        finally:
            store.close()
    except JobNotFound as error:
        raise click.ClickException(str(error)) from error
    except JobLogError as error:
        raise fail_cleanly(error) from error
    if as_json:
        for job in jobs:
            click.echo(
                json.dumps(
                    {
                        "id": job.id,
                        "external_job_id": job.external_job_id,
                        "job_type": job.job_type,
                        "operation": job.operation,
                        "status": job.status.value,
                        "percent": job.percent_complete,
                        "created_at": job.created_at.isoformat(),
                    }
                )
            )
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
        click.echo(
            json.dumps(
                {
                    "id": job.id,
                    "status": job.status.value,
                    "percent": summary.progress.percent,
                    "resolved_by": summary.resolved_by.value,
                }
            )
        )
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


@click.command("logs")
@url_option
@click.option(
    "--level",
    "min_level",
    default="DEBUG",
    show_default=True,
    help="Minimum level: DEBUG, INFO, WARN or ERROR.",
)
@click.option("--contains", help="Only messages containing this text.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.argument("job_id")
def logs_command(url: str, min_level: str, contains: str | None, limit: int, job_id: str) -> None:
    """Print a job's log events (the job by any ID)."""
    try:
        level = Level.parse(min_level)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--level") from error
    console = terminal()
    store = read_store(url)
    try:
        try:
            scope = Resolver(store).locate(job_id).scope
            events = (
                []
                if scope.empty
                else store.reads.list_events(
                    job_id=scope.job_id,
                    external_job_id=scope.external_job_id,
                    filters=EventFilter(min_level=level, contains=contains),
                    limit=limit,
                )
            )
        finally:
            store.close()
    except JobLogError as error:
        raise fail_cleanly(error) from error
    for event in events:
        style = _LEVEL_STYLE[event.level.value]
        line = f"{event.ts:%H:%M:%S.%f} {event.level.value:<5} {event.message}"
        console.print(plain(line, style))
