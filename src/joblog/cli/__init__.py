"""The ``joblog`` command.

Sub-commands are imported when they run: the core install (``pip install joblog``) has
everything but the server stack, and ``joblog serve`` or ``joblog demo`` without the
``server`` extra say which extra to install instead of failing with a traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from joblog import __version__

__all__ = ["main"]

#: command name -> (module, attribute, the extra it needs or None)
COMMANDS: dict[str, tuple[str, str, str | None]] = {
    "db": ("joblog.cli.db", "db", None),
    "jobs": ("joblog.cli.jobs", "jobs_command", None),
    "logs": ("joblog.cli.jobs", "logs_command", None),
    "cancel": ("joblog.cli.cancel", "cancel_command", None),
    "reap": ("joblog.cli.maintenance", "reap_command", None),
    "prune": ("joblog.cli.maintenance", "prune_command", None),
    "drain": ("joblog.cli.drain", "drain_command", None),
    "replay": ("joblog.cli.drain", "drain_command", None),  # its name before drain
    "serve": ("joblog.cli.serve", "serve_command", "server"),
    "demo": ("joblog.cli.demo", "demo_command", "server"),
    "bench": ("joblog.cli.bench", "bench", "bench"),
}

#: The top-level modules each extra installs.
EXTRA_MODULES = {
    "server": {
        "fastapi",
        "starlette",
        "uvicorn",
        "jinja2",
        "anyio",
        "orjson",
        "prometheus_client",
        "opentelemetry",
        "google",
    },
    "bench": {"matplotlib", "fastapi", "starlette", "uvicorn", "jinja2", "psycopg", "pymysql"},
}


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, extra = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = (error.name or "").split(".")[0]
            if extra is None or missing not in EXTRA_MODULES[extra]:
                raise
            return _needs_extra(cmd_name, extra, missing)
        command: click.Command = getattr(module, attribute)
        return command


def _needs_extra(name: str, extra: str, missing: str) -> click.Command:
    message = f"`joblog {name}` needs the {extra} extra: pip install 'joblog[{extra}]'"

    def run(**_options: Any) -> None:
        raise click.ClickException(f"{message} ({missing} is not installed)")

    return click.Command(
        name,
        callback=run,
        help=f"(needs joblog[{extra}])",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="joblog")
def main() -> None:
    """Track jobs and their log events in SQL, and find them by any ID."""
