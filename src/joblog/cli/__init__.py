"""The ``joblog`` command."""

from __future__ import annotations

import click

from joblog import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="joblog")
def main() -> None:
    """Track jobs and their log events in SQL, and find them by any ID."""


def _register() -> None:
    # Each sub-command group lives in its own module; imported here to keep `main` small.
    from joblog.cli.db import db
    from joblog.cli.jobs import jobs_command, logs_command
    from joblog.cli.maintenance import prune_command, reap_command

    main.add_command(db)
    main.add_command(jobs_command)
    main.add_command(logs_command)
    main.add_command(reap_command)
    main.add_command(prune_command)
    from joblog.cli.serve import serve_command

    main.add_command(serve_command)
    from joblog.cli.demo import demo_command

    main.add_command(demo_command)
    from joblog.cli.bench import bench

    main.add_command(bench)


_register()
