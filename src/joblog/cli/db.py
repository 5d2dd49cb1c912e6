"""``joblog db``: upgrade, downgrade, inspect, stamp and backfill a joblog database.

The URL comes from ``--url`` or ``JOBLOG_DATABASE_URL``. Every failure is reported as a
one-line error with a non-zero exit, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from joblog.cli.common import url_option
from joblog.exceptions import JobLogError
from joblog.storage import migrate
from joblog.storage.backfill import backfill as backfill_external_job_ids

__all__ = ["db"]


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn joblog's errors into click's clean one-line error and exit status 1."""
    try:
        yield
    except JobLogError as exc:
        raise click.ClickException(str(exc)) from exc


def require_database(url: str) -> None:
    """Stop with "no database at PATH" rather than let SQLite create an empty file."""
    path = migrate.missing_database(url)
    if path is not None:
        raise click.ClickException(f"no database at {path}")


def show_revision(label: str, revision: str | None) -> None:
    click.echo(f"{label}: {revision or '(none)'}")


@click.group()
def db() -> None:
    """Manage the database schema: migrations and the external-ID backfill."""


@db.command()
@click.argument("revision", default="head")
@url_option
def upgrade(revision: str, url: str) -> None:
    """Upgrade to REVISION (default: head), adopting an older-system database."""
    with reported_errors():
        show_revision("before", migrate.current(url))
        migrate.upgrade(url, revision)
        show_revision("after", migrate.current(url))


# ignore_unknown_options lets a relative revision such as -1 through as the argument.
@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@url_option
def downgrade(revision: str, url: str) -> None:
    """Downgrade to REVISION: an ID, -N steps, or "base" (drops every joblog table)."""
    with reported_errors():
        show_revision("before", migrate.current(url))
        migrate.downgrade(url, revision)
        show_revision("after", migrate.current(url))


@db.command()
@url_option
def current(url: str) -> None:
    """Show the database's revision and the newest one joblog knows."""
    with reported_errors():
        require_database(url)
        show_revision("current", migrate.current(url))
        show_revision("head", migrate.head_revision())


@db.command()
@click.argument("revision")
@url_option
def stamp(revision: str, url: str) -> None:
    """Record REVISION as current without migrating (for hand-changed databases)."""
    with reported_errors():
        show_revision("before", migrate.current(url))
        migrate.stamp(url, revision)
        show_revision("after", migrate.current(url))


@db.command()
@click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True)
@url_option
def backfill(batch_size: int, url: str) -> None:
    """Fill log_events.external_job_id from each event's job or its attrs."""
    columns = (
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with reported_errors():
        require_database(url)
    with reported_errors(), Progress(*columns, transient=True) as bar:
        task = bar.add_task("backfill", total=None)

        def advance(examined: int, total: int) -> None:
            bar.update(task, completed=examined, total=total)

        updated = backfill_external_job_ids(url, batch_size=batch_size, progress=advance)
    click.echo(f"filled external_job_id on {updated} log event(s)")
