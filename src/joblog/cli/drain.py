"""``joblog drain [PATH]``: ship what a journal or a dead-letter file holds (``replay`` too).

PATH is a journal directory, a directory of journals (the default root), or a dead-letter
file; without it, every journal under the default root of ``--url`` (or ``--server``).
Each batch is stored once (batch keys), so draining twice, or while a Tracker ships part,
duplicates nothing. Exit status 1 when anything is left: a journal in use by a live
process, an outage, records the database refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from joblog._durability import database_root, server_root
from joblog._ops import Sink
from joblog.cli.common import (
    escaped,
    fail_cleanly,
    read_store,
    server_options,
    target,
    url_option,
)
from joblog.dead_letter import DeadLetter, default_path
from joblog.drain import DrainReport, drain_file, drain_journal
from joblog.exceptions import JobLogError
from joblog.journal import JournalLocked, journals_under

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["drain_command"]


@click.command("drain")
@url_option
@server_options
@click.argument("path", required=False, type=click.Path(exists=True, readable=True, path_type=Path))
def drain_command(url: str, server: str | None, token: str | None, path: Path | None) -> None:
    """Ship a journal left by a Tracker or Client, or a dead-letter file, once each.

    PATH: a journal directory, a directory of journals, or a dead-letter file. Without
    PATH, the journals under the default journal directory of --url (or --server).
    """
    where = target(url, server, token)
    sink, root, events_only, close = _open_sink(where.url, where.server, where.token)
    failed = False
    try:
        if path is not None and not path.is_dir():
            if path.name.startswith("seg-") and (path.parent / "id").exists():
                raise click.UsageError(
                    f"{escaped(path)} is a segment of a journal: drain its directory, "
                    "which ships it in order and under its batch keys"
                )
            report = _file(path, sink)
            _show(report)
            failed = bool(report.refused or report.stopped)
        else:
            failed = _journals(path, root, sink, events_only)
    finally:
        close()
    if failed:
        raise SystemExit(1)


def _open_sink(
    url: str, server: str | None, token: str | None
) -> tuple[Sink, Path, bool, Callable[[], None]]:
    if server is not None:
        from joblog.client.http import EventSink, HttpSession

        session = HttpSession(server, token, timeout=30.0)
        return EventSink(session), server_root(server), True, session.close
    store = read_store(url)  # a mistyped URL is an error, never a new empty database
    return store, database_root(store), False, store.close


def _file(path: Path, sink: Sink) -> DrainReport:
    try:
        report = drain_file(path, sink)
    except OSError as error:
        raise click.ClickException(f"cannot read {escaped(path)}: {escaped(error)}") from None
    if report.corrupt and not (report.batches or report.duplicates or report.refused):
        raise click.ClickException(
            f"{escaped(path)} holds no record ({report.corrupt} line(s) that are none): "
            "not a journal or a dead-letter file"
        )
    return report


def _journals(path: Path | None, root: Path, sink: Sink, events_only: bool) -> bool:
    """Drain each journal at ``path`` (or the default root); True when any is left."""
    start = path if path is not None else root
    try:
        found = list(journals_under(start))
    except OSError as error:
        raise click.ClickException(f"cannot read {escaped(start)}: {escaped(error)}") from None
    if not found:
        if path is not None:
            raise click.ClickException(
                f"{escaped(path)} is neither a journal (no id file, no seg-*.jsonl) nor a "
                "directory of journals, nor a dead-letter file"
            )
        click.echo(f"no journal under {escaped(root)}: nothing to drain")
        return False
    dead_letter = DeadLetter(default_path(None if events_only else _local_file(sink)))
    failed = False
    for directory in found:
        try:
            report = drain_journal(directory, sink, dead_letter, events_only=events_only)
        except JournalLocked as error:
            click.echo(
                f"{escaped(error)} (it ships its own journal; stop it, or drain after it exits)",
                err=True,
            )
            failed = True
            continue
        except OSError as error:
            click.echo(f"cannot drain {escaped(directory)}: {escaped(error)}", err=True)
            failed = True
            continue
        except JobLogError as error:
            raise fail_cleanly(error) from error
        _show(report)
        failed = failed or bool(report.refused or report.stopped)
    return failed


def _local_file(sink: Sink) -> str | None:
    local = getattr(sink, "local_file", None)
    return local if isinstance(local, str) else None


def _show(report: DrainReport) -> None:
    click.echo(f"{escaped(report.source)}: {report.summary()}")
    for problem in report.problems:
        click.echo(f"  {escaped(problem)}", err=True)
    if report.kept_in is not None:
        click.echo(
            f"  refused ops kept in {escaped(report.kept_in)} (joblog drain FILE retries them)",
            err=True,
        )
    if report.stopped is not None:
        click.echo(
            f"  stopped: {escaped(report.stopped)}; the rest is left for the next drain", err=True
        )
