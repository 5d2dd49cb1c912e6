"""``joblog serve``: the JSON API, the live stream and the dashboard, under uvicorn.

The socket is bound here, before uvicorn starts, so that a port in use is a one-line
error rather than a log record and an exit from deep inside the server.
"""

from __future__ import annotations

import dataclasses
import socket
from datetime import timedelta
from typing import TYPE_CHECKING

import click
import uvicorn

from joblog.cli.common import DURATION, url_option
from joblog.exceptions import ConfigError, JobLogError
from joblog.storage.store import Store
from joblog.web.server import bind_socket

if TYPE_CHECKING:
    from joblog.api.settings import ApiSettings

__all__ = ["serve_command"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _listen(host: str, port: int) -> socket.socket:
    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc


def _open_store(url: str) -> Store:
    try:
        store = Store(url)
        store.reads.ping()
    except JobLogError as exc:
        raise click.ClickException(str(exc)) from exc
    return store


def _access_settings(
    host: str, external_id_policy: str, read_only: bool, insecure_no_auth: bool
) -> ApiSettings:
    """Tokens from the environment; refuse an open write API unless explicitly asked for."""
    from joblog.api.auth import load_tokens
    from joblog.api.settings import ApiSettings

    try:
        write_tokens, read_tokens = load_tokens("WRITE"), load_tokens("READ")
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if not read_only and not write_tokens:
        if not insecure_no_auth:
            raise click.ClickException(
                "the write API needs a token: set JOBLOG_WRITE_TOKENS (or "
                "JOBLOG_WRITE_TOKENS_FILE), or pass --read-only; --insecure-no-auth accepts "
                "writes from anyone (local experiments only)"
            )
        click.secho(
            f"WARNING: --insecure-no-auth: anyone who can reach {host} can create, change "
            "and cancel jobs. Never use it on a shared network.",
            fg="red",
            bold=True,
            err=True,
        )
    elif insecure_no_auth:
        click.echo("note: --insecure-no-auth ignored: write tokens are configured", err=True)
    return ApiSettings(
        write_tokens=write_tokens,
        read_tokens=read_tokens,
        insecure_no_auth=insecure_no_auth and not write_tokens,
        write_api=not read_only,
        external_id_policy=external_id_policy,
    )


def _display_url(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


@click.command("serve")
@url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0: any."
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
@click.option(
    "--reap-interval",
    type=click.FloatRange(0, 86400),
    default=60.0,
    show_default=True,
    help=(
        "Seconds between sweeps that fail joblog jobs whose heartbeat lapsed (jobs that"
        " never had a heartbeat, e.g. the Go tracker's, are left alone); 0: never."
    ),
)
@click.option(
    "--retention",
    type=DURATION,
    envvar="JOBLOG_RETENTION",
    default=None,
    help="Prune log events older than this (e.g. 30d) while serving; default: keep all.",
)
@click.option(
    "--prune-interval",
    type=DURATION,
    default="1h",
    show_default=True,
    help="How often the retention prune runs.",
)
@click.option(
    "--external-id-policy",
    type=click.Choice(["reject", "allow"]),
    envvar="JOBLOG_EXTERNAL_ID_POLICY",
    default="reject",
    show_default=True,
    help="A new job whose external ID a running job holds: refuse it (409) or allow it.",
)
@click.option(
    "--worker-threads",
    type=click.IntRange(1, 64),
    envvar="JOBLOG_WORKER_THREADS",
    default=2,
    show_default=True,
    help="Threads for database calls; more only contend for the GIL.",
)
@click.option("--read-only", is_flag=True, help="Serve without the write (ingest) API.")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Accept writes without a token when none is configured (local experiments only).",
)
def serve_command(
    url: str,
    host: str,
    port: int,
    log_level: str,
    reap_interval: float,
    retention: timedelta | None,
    prune_interval: timedelta,
    external_id_policy: str,
    worker_threads: int,
    read_only: bool,
    insecure_no_auth: bool,
) -> None:
    """Serve the status API (/api/v1, docs at /docs) and the live dashboard.

    Writes need a bearer token from JOBLOG_WRITE_TOKENS (comma-separated) or
    JOBLOG_WRITE_TOKENS_FILE (one per line); with JOBLOG_READ_TOKENS (or _FILE) set, reads
    and the dashboard need a read or write token too. See docs/INGEST.md.
    """
    from joblog.api.app import create_app  # FastAPI is imported only for this command

    settings = dataclasses.replace(
        _access_settings(host, external_id_policy, read_only, insecure_no_auth),
        worker_threads=worker_threads,
    )
    store = _open_store(url)
    sock = _listen(host, port)
    bound_port = int(sock.getsockname()[1])
    app = create_app(
        store=store,
        reap_interval=reap_interval or None,
        retention=retention,
        prune_interval=prune_interval.total_seconds(),
        settings=settings,
    )
    config = uvicorn.Config(app, log_level=log_level, lifespan="on")
    server = uvicorn.Server(config)
    database = store.url.render_as_string(hide_password=True)
    click.echo(f"joblog serving {database}")
    click.echo(f"dashboard: {_display_url(host, bound_port)}   API docs: /docs")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        store.close()
