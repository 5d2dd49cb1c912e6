"""``joblog db``: upgrade, downgrade, inspect, stamp, backfill and partition a joblog database.

The URL comes from ``--url`` or ``JOBLOG_DATABASE_URL``. Every failure is reported as a
one-line error with a non-zero exit, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from joblog.cli.common import DURATION, url_option
from joblog.exceptions import JobLogError
from joblog.storage import migrate
from joblog.storage.backfill import backfill as backfill_external_job_ids
from joblog.storage.backfill import platform_owns_the_column

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
    """Manage the database schema: migrations, the external-ID backfill, partitions."""


@db.command()
@click.argument("revision", default="head")
@click.option(
    "--check",
    is_flag=True,
    help="Print what the upgrade would do (vintage, stamp, revisions); change nothing.",
)
@click.option(
    "--sql",
    "as_sql",
    is_flag=True,
    help="Print the SQL the upgrade would run (Alembic's offline mode); change nothing.",
)
@url_option
def upgrade(revision: str, check: bool, as_sql: bool, url: str) -> None:
    """Upgrade to REVISION (default: head).

    The platform's own database (vintage a, b or c of its job tables, no joblog
    revision) is adopted first: its vintage is recognised and printed, the matching
    revision stamped, and every original value, column and index kept. An adoption
    that fails is undone. See docs/ADOPTING.md.
    """
    if check and as_sql:
        raise click.UsageError("--check and --sql are two dry runs: choose one")
    with reported_errors():
        if check:
            for line in migrate.plan_upgrade(url, revision).describe():
                click.echo(line)
            click.echo("nothing was changed (--check)")
            return
        if as_sql:
            click.echo(migrate.upgrade_sql(url, revision), nl=False)
            return
        show_revision("before", migrate.current(url))
        adoption = migrate.upgrade(url, revision)
        if adoption is not None:
            for line in adoption.describe():
                click.echo(f"adopted: {line}")
        show_revision("after", migrate.current(url))


# ignore_unknown_options lets a relative revision such as -1 through as the argument.
@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@url_option
def downgrade(revision: str, url: str) -> None:
    """Downgrade to REVISION: an ID, -N steps, or "base".

    "base" drops every joblog table; on an adopted platform database it removes what
    joblog added and restores the columns it widened (refusing, before any change,
    when a value no longer fits), leaving the platform's tables as they were.
    """
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
    """Fill log_events.external_job_id from each event's job or its attrs.

    On an adopted platform database (vintages b and c) the job's value is the
    platform's job_tracking.external_job_id, so events stay findable by external ID
    after a downgrade and upgrade. In vintage c the column is the platform's own and
    is left as the platform wrote it.
    """
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
    with reported_errors():
        if platform_owns_the_column(url):
            click.echo(
                "log_events.external_job_id is the platform's own column (vintage c):"
                " left as the platform wrote it"
            )


@db.command()
@click.option(
    "--interval",
    type=DURATION,
    default=None,
    help=(
        "Time each partition covers: whole hours, 1h to 366d. Default: 1d for a conversion;"
        " on a partitioned table, the width of its newest partition."
    ),
)
@url_option
def partition(interval: timedelta | None, url: str) -> None:
    """Partition log_events by time on PostgreSQL, online; or make partitions ahead.

    A new PostgreSQL database already has log_events partitioned by ts (a partition
    per day, and a default partition for anything else); retention then drops whole
    partitions instead of deleting rows. This converts an older database's plain
    log_events while producers and servers keep writing: nothing is copied, the old
    table becomes the partition of everything before a boundary a day or more ahead,
    and new partitions start there. Writers wait only for the final swap, whose length
    is printed (milliseconds on an idle lock; each lock is asked for with a short timeout
    and asked again, so a long query delays the conversion, not the writers). A run that
    fails or is interrupted is undone (by itself, or by the next run).

    On a log_events that is partitioned already it makes the partitions ahead (as the
    server and `joblog prune` do), and --interval changes the width of those made from
    now on. A database adopted from the platform is refused; SQLite and MariaDB have no
    partitions. See docs/OPERATIONS.md.
    """
    from joblog.storage.maintenance import ConversionReport
    from joblog.storage.store import Store

    with reported_errors():
        require_database(url)
        store = Store(url)
        try:
            outcome = store.housekeeping.partition_events(
                interval, progress=lambda line: click.echo(f"... {line}")
            )
        finally:
            store.close()
    if isinstance(outcome, ConversionReport):
        click.echo(
            f"log_events is partitioned: {outcome.legacy} holds everything before"
            f" {outcome.boundary}; new partitions: {', '.join(outcome.created)}"
        )
        click.echo(
            f"writers waited at most {outcome.swap_seconds * 1000:.0f} ms (the swap);"
            f" {outcome.diverted} row(s) dated after the boundary moved;"
            f" locks asked again: {outcome.lock_retries}; took {outcome.seconds:.1f}s"
        )
        return
    made = ", ".join(outcome.created) or "none (enough ahead)"
    click.echo(f"log_events is partitioned (every {outcome.interval}); created: {made}")
    if outcome.moved_rows:
        click.echo(f"moved {outcome.moved_rows:,} row(s) out of the default partition")
    if outcome.deferred:
        click.echo(f"not created yet (a lock was busy): {', '.join(outcome.deferred)}")
