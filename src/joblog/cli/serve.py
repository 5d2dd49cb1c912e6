"""``joblog serve``: the JSON API, the live stream and the dashboard, under uvicorn.

The socket is bound here, before uvicorn starts, so that a port in use is a one-line
error rather than a log record and an exit from deep inside the server.

``--workers N`` (default: the number of cores) runs N server processes on that one
socket (uvicorn's supervisor, which restarts a worker that dies). Each builds its own
app from the same settings (:func:`worker_app`); everything they share is in the
database: jobs, the write-token check and the dashboard's signed session cookies need no
state, each worker has its own change hub (its own ``LISTEN``) and summary cache
validated against the database, and the reaper and pruning run in each worker as they
would in N servers.

Every option can come from the command line, then a ``JOBLOG_<OPTION>`` variable (click's
``auto_envvar_prefix``: ``--reap-interval`` is ``JOBLOG_REAP_INTERVAL``; ``--url`` is
``JOBLOG_DATABASE_URL``), then the TOML file of ``--config`` (``JOBLOG_CONFIG``), then its
default. The file's keys are the options' names (``reap_interval = 30``, ``retention =
"30d"``); an unknown key, a value of the wrong type or out of range is an error naming the
file and the key. Tokens are secrets and come from the environment only.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import socket
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn

from joblog.cli.common import DURATION, url_option
from joblog.exceptions import ConfigError, JobLogError
from joblog.storage.store import Store
from joblog.web.server import bind_socket

if TYPE_CHECKING:
    from fastapi import FastAPI

    from joblog.api.settings import ApiSettings

__all__ = ["MAX_WORKERS", "default_workers", "serve_command", "worker_app"]

#: More processes than this on one machine only fight over its cores and connections.
MAX_WORKERS = 64


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
ENV_PREFIX = "JOBLOG"
#: One line per record on stderr: when, how bad, which part, what.
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MAX_CONFIG_BYTES = 1024 * 1024


def _config_error(path: str, message: str) -> click.BadParameter:
    return click.BadParameter(f"{path}: {message}", param_hint="'--config'")


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read the TOML file into ``ctx.default_map``, checking every key and value first."""
    if value is None:
        return None
    try:
        raw = Path(value).read_bytes()[: MAX_CONFIG_BYTES + 1]
    except OSError as exc:
        raise _config_error(value, f"cannot read it: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise _config_error(value, "larger than 1 MiB; not a configuration file")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _config_error(value, "not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _config_error(value, f"not valid TOML: {exc}") from exc
    params = {
        p.name: p
        for p in ctx.command.params
        if isinstance(p, click.Option) and p.name not in (None, "config", "help")
    }
    defaults: dict[str, Any] = {}
    for key, item in data.items():
        name = key.replace("-", "_")
        param = params.get(name)
        if param is None:
            known = ", ".join(sorted(params))
            raise _config_error(value, f"unknown key {_shown(key)}; the keys are: {known}")
        defaults[name] = _checked(ctx, value, key, param, item)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _shown(key: str) -> str:
    return repr(key[:60]).encode("ascii", "backslashreplace").decode()


def _checked(ctx: click.Context, path: str, key: str, param: click.Option, item: Any) -> Any:
    """The value of ``key`` converted by the option's own type, or a clear error."""
    if param.is_flag:
        if not isinstance(item, bool):
            raise _config_error(path, f"{key} must be true or false")
        return item
    if isinstance(item, bool) or not isinstance(item, str | int | float):
        raise _config_error(path, f"{key} must be a string or a number, not {type(item).__name__}")
    if isinstance(item, float) and not math.isfinite(item):
        raise _config_error(path, f"{key} must be a finite number")
    if isinstance(item, str) and any(ord(char) < 0x20 or ord(char) == 0x7F for char in item):
        raise _config_error(path, f"{key} holds a control character")
    try:
        return param.type_cast_value(ctx, item)
    except click.BadParameter as exc:
        raise _config_error(path, f"{key} = {item!r:.80}: {exc.message}") from exc


#: The loggers of the server's own lines. Not the "joblog" root of them: the tracker records
#: step failures through "joblog", and ``demo`` logs its workload under "joblog.demo";
#: silencing or cutting those off from the root logger would lose their events.
SERVER_LOGGERS = ("joblog.serve", "joblog.api", "joblog.storage", "joblog.writer")


def _configure_logging(level: str, verbose: bool) -> None:
    """joblog's own records (startup, reaper, pruning) on stderr; migrations only with -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
    handler.joblog_serve = True  # type: ignore[attr-defined]
    numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper())
    targets = [logging.getLogger(name) for name in SERVER_LOGGERS]
    if verbose:
        targets.append(logging.getLogger("alembic"))
    for logger in targets:
        logger.handlers = [h for h in logger.handlers if not getattr(h, "joblog_serve", False)]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if logger.name == "alembic" else numeric)
        logger.propagate = False


def _listen(host: str, port: int) -> socket.socket:
    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc


def _open_store(url: str, settings: ApiSettings) -> Store:
    try:
        store = Store(
            url,
            read_url=settings.read_url,
            direct_url=settings.direct_url,
            read_max_lag=settings.read_max_lag,
        )
        store.primary_reads.ping()
    except JobLogError as exc:
        raise click.ClickException(str(exc)) from exc
    return store


def _settings(host: str, insecure_no_auth: bool, **options: Any) -> ApiSettings:
    """The settings from the environment and the options; refuse an open write API unless
    explicitly asked for."""
    from joblog.api.settings import ApiSettings

    try:
        settings = ApiSettings.from_env(insecure_no_auth=insecure_no_auth, **options)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.write_api and not settings.write_tokens:
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
    elif insecure_no_auth and settings.write_tokens:
        click.echo("note: --insecure-no-auth ignored: write tokens are configured", err=True)
    if settings.write_tokens and settings.insecure_no_auth:
        import dataclasses

        settings = dataclasses.replace(settings, insecure_no_auth=False)
    return settings


def _display_url(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


@click.command("serve", context_settings={"auto_envvar_prefix": ENV_PREFIX})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_load_config,
    show_envvar=True,
    help="A TOML file of options (keys as the options' names); flags and JOBLOG_* win.",
)
@url_option
@click.option(
    "--read-url",
    envvar="JOBLOG_READ_DATABASE_URL",
    show_envvar=True,
    help="A PostgreSQL streaming replica for reads (see docs/DEPLOYING.md).",
)
@click.option(
    "--direct-url",
    envvar="JOBLOG_DIRECT_DATABASE_URL",
    show_envvar=True,
    help="The primary without PgBouncer, for LISTEN and locks, when --url goes through it.",
)
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
    default="reject",
    show_default=True,
    help="A new job whose external ID a running job holds: refuse it (409) or allow it.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=default_workers,
    show_default="the number of cores",
    help="Server processes sharing the port (all shared state is in the database).",
)
@click.option(
    "--worker-threads",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Threads for database calls; more only contend for the GIL.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01, 60),
    default=0.3,
    show_default=True,
    help="Seconds between two database reads of a followed job (the live stream).",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024, 1024**3),
    default=5 * 1024 * 1024,
    show_default=True,
    help="Larger request bodies get 413.",
)
@click.option(
    "--session-max-age",
    type=DURATION,
    default="12h",
    show_default=True,
    help="How long a dashboard login lasts.",
)
@click.option("--read-only", is_flag=True, help="Serve without the write (ingest) API.")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Accept writes without a token when none is configured (local experiments only).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also log the migrations run at startup (Alembic)."
)
def serve_command(
    url: str,
    read_url: str | None,
    direct_url: str | None,
    host: str,
    port: int,
    log_level: str,
    reap_interval: float,
    retention: timedelta | None,
    prune_interval: timedelta,
    external_id_policy: str,
    workers: int,
    worker_threads: int,
    poll_interval: float,
    max_body_bytes: int,
    session_max_age: timedelta,
    read_only: bool,
    insecure_no_auth: bool,
    verbose: bool,
) -> None:
    """Serve the status API (/api/v1, docs at /docs) and the live dashboard.

    Writes need a bearer token from JOBLOG_WRITE_TOKENS (comma-separated) or
    JOBLOG_WRITE_TOKENS_FILE (one per line); with JOBLOG_READ_TOKENS (or _FILE) set, reads
    and the dashboard need a read or write token too. See docs/INGEST.md.

    Any option may instead come from JOBLOG_<OPTION> (e.g. JOBLOG_REAP_INTERVAL) or from
    the TOML file of --config; the command line wins, then the environment, then the file.
    """
    from joblog.api.app import create_app  # FastAPI is imported only for this command

    _configure_logging(log_level, verbose)
    settings = _settings(
        host,
        insecure_no_auth,
        write_api=not read_only,
        external_id_policy=external_id_policy,
        worker_threads=worker_threads,
        poll_interval=poll_interval,
        max_body_bytes=max_body_bytes,
        session_max_age=int(session_max_age.total_seconds()),
        reap_interval=reap_interval or None,
        retention=retention,
        prune_interval=prune_interval.total_seconds(),
        read_url=read_url,
        direct_url=direct_url,
    )
    store = _open_store(url, settings)  # migrates, once, before any worker starts
    sock = _listen(host, port)
    bound_port = int(sock.getsockname()[1])
    # One process: the app exists before the URL is printed, as a caller may expect.
    app = create_app(store=store, settings=settings) if workers == 1 else None
    database = store.url.render_as_string(hide_password=True)
    click.echo(f"joblog serving {database}")
    click.echo(f"dashboard: {_display_url(host, bound_port)}   API docs: /docs")
    logging.getLogger("joblog.serve").info(
        "serving %s on %s (write API %s, read tokens %s, %d worker(s) of %d thread(s))",
        database,
        _display_url(host, bound_port),
        "on" if settings.write_api else "off",
        "required" if settings.read_tokens else "not required",
        workers,
        settings.worker_threads,
    )
    try:
        if app is not None:
            server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
            server.run(sockets=[sock])
        else:
            store.close()
            from joblog.api.metrics import multiprocess_directory

            # Every worker's counters in one /metrics, whichever worker answers the scrape.
            metrics_directory = multiprocess_directory()
            try:
                _supervise(url, settings, log_level, verbose, workers, sock)
            finally:
                shutil.rmtree(metrics_directory, ignore_errors=True)
    finally:
        sock.close()
        store.close()


def worker_app(url: str, settings: ApiSettings, log_level: str, verbose: bool) -> FastAPI:
    """The app of one ``--workers`` process (uvicorn calls this in the new process)."""
    from joblog.api.app import create_app

    _configure_logging(log_level, verbose)
    return create_app(url, settings=settings)


def _supervise(
    url: str,
    settings: ApiSettings,
    log_level: str,
    verbose: bool,
    workers: int,
    sock: socket.socket,
) -> None:
    from uvicorn.supervisors import Multiprocess

    factory = functools.partial(worker_app, url, settings, log_level, verbose)
    config = uvicorn.Config(
        factory, factory=True, workers=workers, log_level=log_level, lifespan="on"
    )
    Multiprocess(config, sockets=[sock]).run()
