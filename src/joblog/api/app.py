"""The ASGI application: the JSON API, the live stream, health, metrics and the dashboard.

``create_app`` builds one :class:`Store` and one :class:`Resolver` for the process and puts
them on ``app.state`` (``store``, ``resolver``, ``settings``, ``metrics``); the dashboard's
pages read them from there. Whoever runs a tracker in the same process (``joblog demo``)
may attach it as ``app.state.tracker`` to have its writer counters in ``/metrics``.
``app.state.housekeeping_runs`` counts the housekeeping rounds by ``(task, "ran" |
"skipped")``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import anyio
from fastapi import FastAPI, Security
from starlette.concurrency import run_in_threadpool

from joblog import __version__
from joblog._config import DEFAULT_URL
from joblog.api import failover, routes_jobs, routes_login, routes_ops, routes_write, stream
from joblog.api.auth import TokenGuard, bearer_scheme, install_access_control
from joblog.api.errors import InputGuard, Refusal, install_error_handlers, json_refusal
from joblog.api.hub import ChangeHub
from joblog.api.metrics import MetricsMiddleware, RequestMetrics
from joblog.api.schemas import ErrorBody
from joblog.api.settings import ApiSettings
from joblog.exceptions import JobLogError
from joblog.resolve import Resolver
from joblog.storage.maintenance import HousekeepingRun
from joblog.storage.producer import ProducerWrites
from joblog.storage.store import Store

__all__ = ["create_app"]

log = logging.getLogger("joblog.api")


def create_app(
    url: str | None = None,
    *,
    store: Store | None = None,
    reap_interval: float | None = None,
    retention: timedelta | None = None,
    prune_interval: float | None = None,
    settings: ApiSettings | None = None,
) -> FastAPI:
    """The joblog server for the database at ``url`` (or the given ``store``).

    Without ``url`` or ``store`` the database is ``JOBLOG_DATABASE_URL``'s; without
    ``settings``, they come from the ``JOBLOG_*`` variables ``joblog serve`` reads
    (:meth:`ApiSettings.from_env`), so ``uvicorn 'joblog.api.app:create_app' --factory``
    is configured like ``joblog serve``.
    ``reap_interval``: seconds between sweeps that fail abandoned jobs (running, no
    heartbeat for a while: :meth:`Housekeeping.reap_abandoned`) while the app serves; None: none.
    ``retention``: when set, every ``prune_interval`` seconds log events older than this
    are pruned in small batches (:meth:`Housekeeping.prune`; events of running jobs are kept).
    These three, when given, override the settings' own. On PostgreSQL with a partitioned
    ``log_events``, partitions are made ahead at startup and every ``prune_interval``.
    Each round takes the task's lease for the database (:meth:`Housekeeping.lease`): of
    the servers sharing one database, one does the round and the others skip it.
    """
    if reap_interval is not None and reap_interval <= 0:
        raise ValueError("reap_interval must be positive")
    if (prune_interval is not None and prune_interval <= 0) or (
        retention is not None and retention <= timedelta(0)
    ):
        raise ValueError("prune_interval and retention must be positive")
    settings = settings if settings is not None else ApiSettings.from_env()
    if reap_interval is not None:
        settings = dataclasses.replace(settings, reap_interval=reap_interval)
    if retention is not None:
        settings = dataclasses.replace(settings, retention=retention)
    if prune_interval is not None:
        settings = dataclasses.replace(settings, prune_interval=prune_interval)
    if store is None:
        store = Store(url or os.environ.get("JOBLOG_DATABASE_URL") or DEFAULT_URL)
        owns_store = True
    else:
        owns_store = False
    reap_every, keep_for = settings.reap_interval, settings.retention

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync handlers and database calls run in anyio's worker threads. Dozens of them
        # only fight over the GIL (throughput fell as pollers rose); a few keep the
        # database busy while the event loop parses and answers.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = _app.state.settings.worker_threads
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_app.state.hub.run)
            runs = _app.state.housekeeping_runs
            if reap_every is not None:
                log.info("reaper: every %gs, abandoned jobs are failed", reap_every)
                tasks.start_soon(_every, reap_every, _reap, store, runs)
            if keep_for is not None:
                log.info(
                    "pruning: log events older than %s, every %gs",
                    keep_for,
                    settings.prune_interval,
                )
                tasks.start_soon(_every, settings.prune_interval, _prune, store, runs, keep_for)
            if store.backend.event_partitions() is not None:
                # A partitioned log_events needs partitions ahead, retention or not.
                every = functools.partial(_every, start_now=True)
                tasks.start_soon(every, settings.prune_interval, _partitions, store, runs)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        if owns_store:
            store.close()

    app = FastAPI(
        title="joblog",
        version=__version__,
        description="Jobs, steps and log events, found by any ID a GUI holds.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.resolver = resolver = Resolver(store)
    app.state.settings = settings
    app.state.guard = guard = TokenGuard(
        settings.write_tokens,
        settings.read_tokens,
        insecure_no_auth=settings.insecure_no_auth,
        session_max_age=settings.session_max_age,
    )
    app.state.producer = ProducerWrites(
        store, external_id_policy=settings.external_id_policy, attach=resolver.attach
    )
    app.state.metrics = RequestMetrics()
    app.state.hub = ChangeHub(
        store, poll_interval=settings.poll_interval, safety_interval=settings.safety_interval
    )
    app.state.tracker = None
    app.state.reap_interval = reap_every
    #: (task, "ran" | "skipped") -> rounds of housekeeping this process did or stood aside for.
    app.state.housekeeping_runs = collections.Counter()
    install_error_handlers(app)
    # Inside access control (a client is authenticated first), outside every route.
    app.add_middleware(InputGuard, refusals=_refusals())
    # Inside the metrics middleware, so that refused requests are counted too.
    install_access_control(app, guard, settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    # Declares the bearer scheme on the read routes in OpenAPI (the middleware enforces it).
    read_auth = [Security(bearer_scheme)] if guard.reads_guarded else []
    # The stream router goes first: its ``{any_id:path}/stream`` must match before the
    # status route's bare ``{any_id:path}``.
    read_errors = _error_docs({503: "Database unavailable"})
    if guard.reads_guarded:
        read_errors |= _error_docs(
            {401: "No or malformed Authorization header", 403: "Not a read or write token"}
        )
    app.include_router(stream.router, dependencies=read_auth, responses=read_errors)
    app.include_router(failover.router, dependencies=read_auth, responses=read_errors)
    app.include_router(routes_jobs.router, dependencies=read_auth, responses=read_errors)
    app.include_router(routes_ops.router, responses=read_errors)
    if settings.write_api:
        app.include_router(routes_write.router)
    app.include_router(routes_login.router)
    _include_dashboard(app)
    return app


def _error_docs(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, so clients (and Schemathesis) expect them."""
    return {code: {"model": ErrorBody, "description": text} for code, text in described.items()}


def _refusals() -> tuple[tuple[str, Refusal], ...]:
    """How the input guard answers, by path prefix: the origin's contract, JSON, pages."""
    from joblog.web.pages import refusal as page_refusal

    json_paths = ("/api/", "/healthz", "/metrics", "/openapi.json")
    return (
        (failover.PREFIX, failover.refusal),
        *((prefix, json_refusal) for prefix in json_paths),
        ("/", page_refusal),
    )


def _include_dashboard(app: FastAPI) -> None:
    from joblog.web.pages import build_router

    app.include_router(build_router())


async def _every(
    interval: float, job: Callable[..., None], *args: Any, start_now: bool = False
) -> None:
    """Run the housekeeping ``job`` in a worker thread every ``interval`` seconds.

    Rounds fall on multiples of ``interval`` on the wall clock, so the servers sharing a
    database start theirs together: one takes the task's lease, the others skip the round.
    """
    if start_now:
        await _run_job(job, *args)
    while True:
        await anyio.sleep(interval - time.time() % interval)
        await _run_job(job, *args)


async def _run_job(job: Callable[..., None], *args: Any) -> None:
    try:
        await run_in_threadpool(job, *args)
    except JobLogError as exc:  # the database may be down; try again next time
        log.warning("%s failed: %s", job.__name__.strip("_"), exc)


def _record(runs: collections.Counter[tuple[str, str]], run: HousekeepingRun) -> None:
    """Count the round; log it at INFO when it changed something, else at DEBUG."""
    runs[(run.task, run.outcome)] += 1
    pruned, made = run.pruned, run.partitions
    changed = bool(
        run.reaped
        or (pruned is not None and (pruned.events or pruned.batch_keys or pruned.jobs))
        or (made is not None and (made.created or made.deferred))
    )
    line = run.describe()
    if run.reaped:
        line += ": " + ", ".join(run.reaped)
    log.log(logging.INFO if changed else logging.DEBUG, "%s", line)


def _reap(store: Store, runs: collections.Counter[tuple[str, str]]) -> None:
    _record(runs, store.housekeeping.run_reap())


def _prune(store: Store, runs: collections.Counter[tuple[str, str]], retention: timedelta) -> None:
    _record(runs, store.housekeeping.run_prune(retention))


def _partitions(store: Store, runs: collections.Counter[tuple[str, str]]) -> None:
    _record(runs, store.housekeeping.run_partitions())
