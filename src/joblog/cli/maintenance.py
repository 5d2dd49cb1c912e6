"""``joblog reap`` and ``joblog prune``: housekeeping from cron or by hand.

Both take the task's lease for the database, as the server's own rounds do: when another
process (a server, another cron job) holds it, they change nothing, say so and exit 0.
"""

from __future__ import annotations

from datetime import timedelta

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from joblog.cli.common import DURATION, fail_cleanly, url_option
from joblog.exceptions import JobLogError
from joblog.model import Level
from joblog.storage.store import Store

__all__ = ["prune_command", "reap_command"]


@click.command("reap")
@url_option
@click.option(
    "--timeout",
    type=DURATION,
    default="60s",
    show_default=True,
    help="A running joblog job whose last heartbeat is this old is failed as abandoned.",
)
def reap_command(url: str, timeout: timedelta) -> None:
    """Fail running jobs whose producer stopped sending heartbeats (it crashed).

    Only jobs joblog promised heartbeats for are reaped: those with a heartbeat_at,
    which joblog sets when it starts a job. A running job without one (written by
    another producer, such as the platform's Go tracker in an adopted database) is
    never failed, however old it is.

    Takes the reap lease for this database first: when another process (a joblog
    server, another reap) holds it, nothing is done and the command says so (exit 0).
    Two reapers never fail the same job.
    """
    try:
        store = Store(url)
        try:
            run = store.housekeeping.run_reap(timeout.total_seconds())
        finally:
            store.close()
    except JobLogError as error:
        raise fail_cleanly(error) from error
    if not run.ran:
        click.echo(run.describe())
        return
    click.echo(f"failed {len(run.reaped)} abandoned job(s)")
    for job_id in run.reaped:
        click.echo(f"  {job_id}")


@click.command("prune")
@url_option
@click.option("--older-than", type=DURATION, required=True, help="e.g. 30d, 12h.")
@click.option(
    "--level",
    "max_level",
    help="Only events at or below this level (e.g. DEBUG keeps INFO and above).",
)
@click.option("--include-jobs", is_flag=True, help="Also delete jobs that ended before then.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
def prune_command(
    url: str,
    older_than: timedelta,
    max_level: str | None,
    include_jobs: bool,
    batch_size: int,
) -> None:
    """Delete old log events; events of pending or running jobs are never touched.

    Rows go in batches of --batch-size, one short transaction each. On PostgreSQL with a
    partitioned log_events (new databases; `joblog db partition` converts others) the
    partitions entirely older than the cutoff are dropped whole first (instant, no dead
    rows; the few events of running jobs in them are kept, moved out first; a partition
    holding many stays whole until its job ends); partitions ahead are made too.

    Takes the prune lease for this database first: when another process (a joblog
    server, another prune) holds it, nothing is done and the command says so (exit 0).
    """
    try:
        level = Level.parse(max_level) if max_level else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--level") from error
    if include_jobs and level is not None:
        raise click.BadParameter("--include-jobs deletes whole jobs; it cannot go with --level")
    console = Console(stderr=True)
    try:
        store = Store(url)
        try:
            with Progress(
                TextColumn("pruning log_events"),
                BarColumn(),
                TextColumn("{task.completed:,} rows"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("prune", total=None)
                made = store.housekeeping.run_partitions()
                run = store.housekeeping.run_prune(
                    older_than,
                    max_level=level,
                    include_jobs=include_jobs,
                    batch_size=batch_size,
                    progress=lambda n: bar.advance(task, n),
                )
        finally:
            store.close()
    except JobLogError as error:
        raise fail_cleanly(error) from error
    if made.partitions is not None and (made.partitions.created or made.partitions.deferred):
        click.echo(made.describe())
    if run.pruned is None:
        click.echo(run.describe())
        return
    report = run.pruned
    click.echo(
        f"removed {report.events:,} log events, {report.batch_keys:,} batch keys and "
        f"{report.jobs:,} jobs in {report.seconds:.1f}s"
    )
    if report.partitions_dropped:
        click.echo(f"dropped whole: {', '.join(report.partitions_dropped)}")
    if report.partitions_kept:
        click.echo(
            "kept whole for now (events of a running job, or busy; a later prune drops"
            f" them): {', '.join(report.partitions_kept)}"
        )
