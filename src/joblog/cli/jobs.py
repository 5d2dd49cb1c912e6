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

from joblog._config import parse_timestamp
from joblog.api.serialize import iso, job_to_dict, summary_to_dict
from joblog.cli.common import (
    SINCE,
    Target,
    age,
    comma_list,
    duration,
    escaped,
    fail_cleanly,
    plain,
    read_store,
    server_options,
    target,
    terminal,
    text_option,
    url_option,
)
from joblog.cli.logs import logs_command
from joblog.cli.server import ServerApi, job_path
from joblog.exceptions import JobLogError
from joblog.model import JobStatus
from joblog.resolve import Resolver, is_resolvable
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
#: The API's largest page of jobs.
_PAGE = 500


def _json_line(value: Any) -> None:
    """One JSON object, ASCII-only: no byte of the data can act on a terminal."""
    click.echo(json.dumps(value, ensure_ascii=True))


@click.command("jobs")
@url_option
@server_options
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
    server: str | None,
    token: str | None,
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
    printed as written and control characters as escapes. With --server (or
    JOBLOG_SERVER) the server's API answers, with a read token if it wants one."""
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
    where = target(url, server, token)
    console = terminal(wide=wide)
    if job_id is not None:
        summary = _summary(where, job_id)
        if as_json:
            _json_line(summary)
        else:
            _show_job(console, summary)
        return
    filters = JobFilter(
        status=status,
        job_type=job_type,
        context_id=context_id,
        external_id_prefix=external_id_prefix,
        since=since,
    )
    jobs = _list(where, filters, limit)
    if as_json:
        for job in jobs:
            _json_line(job)
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
        table.add_row(
            age(_moment(job.get("created_at"))),
            _status(job.get("status")),
            plain(job.get("percent_complete")),
            plain(f"{job.get('job_type')}/{job.get('operation')}"),
            plain(job.get("external_job_id") or "-"),
            plain(job.get("id")),
        )
    console.print(table)


def _list(where: Target, filters: JobFilter, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` jobs, as the API's job objects."""
    if where.server is None:
        store = read_store(where.url)
        try:
            return [job_to_dict(job) for job in store.reads.list_jobs(filters, limit=limit)]
        except JobLogError as error:
            raise fail_cleanly(error) from error
        finally:
            store.close()
    query: dict[str, Any] = {
        "status": ",".join(filters.status) or None,
        "job_type": filters.job_type,
        "context_id": filters.context_id,
        "external_id_prefix": filters.external_id_prefix,
        "since": iso(filters.since),
    }
    query = {name: value for name, value in query.items() if value is not None}
    api = ServerApi(where)
    jobs: list[dict[str, Any]] = []
    try:
        while len(jobs) < limit:
            page = api.get("/api/v1/jobs", {**query, "limit": min(limit - len(jobs), _PAGE)})
            found = page.get("jobs")
            if not isinstance(found, list) or not all(isinstance(j, dict) for j in found):
                raise api.not_joblog("a job list without a list of jobs")
            jobs += found
            cursor = page.get("next_cursor")
            if not found or not isinstance(cursor, str):
                break
            query["cursor"] = cursor
    finally:
        api.close()
    return jobs[:limit]


def _summary(where: Target, any_id: str) -> dict[str, Any]:
    """The job ``any_id`` names, as the API's summary object."""
    if where.server is None:
        store = read_store(where.url)
        try:
            return summary_to_dict(Resolver(store).resolve(any_id))
        except JobLogError as error:
            raise fail_cleanly(error) from error
        finally:
            store.close()
    if not is_resolvable(any_id):
        raise click.ClickException(f"no job is known by the ID '{escaped(any_id)}'")
    api = ServerApi(where)
    try:
        summary = api.get(job_path(any_id), any_id=any_id)
    finally:
        api.close()
    if not isinstance(summary.get("job"), dict) or not isinstance(summary.get("steps"), list):
        raise api.not_joblog("a job summary without a job and its steps")
    return summary


def _moment(value: Any) -> datetime | None:
    try:
        return parse_timestamp(str(value)) if value else None
    except ValueError:
        return None


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _status(value: Any) -> Text:
    return plain(value, _STATUS_STYLE.get(str(value), ""))


def _show_job(console: Console, summary: dict[str, Any]) -> None:
    job: dict[str, Any] = summary["job"]
    progress = summary.get("progress")
    percent = progress.get("percent") if isinstance(progress, dict) else None
    console.print(
        Text.assemble(
            plain(job.get("external_job_id") or job.get("id"), "bold"),
            "  ",
            _status(job.get("status")),
            plain(f"  {percent}%  (found by {summary.get('resolved_by')})"),
        )
    )
    console.print(
        Text.assemble(
            "job ",
            plain(f"{job.get('id')}  {job.get('job_type')}/{job.get('operation')}"),
            f"  elapsed {duration(_seconds(summary.get('elapsed_seconds')))}",
            f"  ETA {duration(_seconds(summary.get('eta_seconds')))}",
        )
    )
    if job.get("error_message"):
        console.print(plain(job["error_message"], "red"))
    table = Table("#", "step", "status", "duration", "error")
    for step in summary["steps"]:
        if not isinstance(step, dict):
            continue
        table.add_row(
            plain(step.get("seq") or ""),
            plain(step.get("name")),
            plain(step.get("status")),
            duration(_seconds(step.get("duration_seconds"))),
            plain(step.get("error_message") or ""),
        )
    console.print(table)
