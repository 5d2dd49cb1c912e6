"""``joblog replay FILE``: store what a writer put in its dead-letter file.

Each line is applied in its own transaction under a batch key derived from the line, so
replaying a file twice (or a file whose first half went in before a failure) stores each
line once. Lines the database still refuses are reported and left for another try.
"""

from __future__ import annotations

from pathlib import Path

import click

from joblog.cli.common import fail_cleanly, url_option
from joblog.dead_letter import read
from joblog.exceptions import JobLogError
from joblog.storage.store import Store

__all__ = ["replay_command"]


@click.command("replay")
@url_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
def replay_command(url: str, path: Path) -> None:
    """Store the ops of a dead-letter file (see `stats().dead_letter_path`) once each."""
    stored = duplicates = refused = 0
    try:
        store = Store(url)
    except JobLogError as error:
        raise fail_cleanly(error) from error
    try:
        for number, key, op in read(path):
            try:
                if store.apply_batch([op], key):
                    stored += 1
                else:
                    duplicates += 1
            except JobLogError as error:
                refused += 1
                click.echo(f"line {number}: still refused: {error}", err=True)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    finally:
        store.close()
    click.echo(f"stored {stored}, already stored {duplicates}, refused {refused}")
    if refused:
        raise SystemExit(1)
