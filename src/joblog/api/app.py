"""The ASGI application: the JSON API, the live stream, health, metrics and the dashboard.

``create_app`` builds one :class:`Store` and one :class:`Resolver` for the process and puts
them on ``app.state`` (``store``, ``resolver``, ``settings``, ``guard``, ``sessions``,
``metrics``: the app's :class:`~joblog.api.metrics.AppMetrics`, which also counts the
housekeeping rounds); the dashboard's pages read them from there. Whoever runs a tracker
in the same process (``joblog demo``) may attach it as ``app.state.tracker`` to have its
writer counters in ``/metrics``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import anyio
from fastapi import FastAPI, Security
from starlette.concurrency import run_in_threadpool

from joblog import __version__
from joblog._config import DEFAULT_URL
from joblog.api import (
    failover,
    routes_jobs,
    routes_login,
    routes_ops,
    routes_otlp,
    routes_traces,
    routes_write,
    stream,
)
from joblog.api.auth import TokenGuard, bearer_scheme, install_access_control
from joblog.api.cache import SummaryCache
from joblog.api.compression import Compression
from joblog.api.docs import install_docs
from joblog.api.errors import InputGuard, Refusal, install_error_handlers, json_refusal
from joblog.api.examples import install_examples
from joblog.api.hub import ChangeHub
from joblog.api.metrics import AppMetrics, MetricsMiddleware
from joblog.api.read_routing import ReadRouting
from joblog.api.schemas import ErrorBody
from joblog.api.security import SecurityHeaders
from joblog.api.sessions import SessionBook
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
        store = Store(
            url or os.environ.get("JOBLOG_DATABASE_URL") or DEFAULT_URL,
            read_url=settings.read_url,
            direct_url=settings.direct_url,
            read_max_lag=settings.read_max_lag,
        )
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
        # The status routes' reads (joblog.api.conditional): the same number of threads.
        _app.state.read_threads = ThreadPoolExecutor(
            _app.state.settings.worker_threads, thread_name_prefix="joblog-read"
        )
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_app.state.hub.run)
            if metrics.multiprocess:
                tasks.start_soon(metrics.sample_every, _SAMPLE_INTERVAL)
            if reap_every is not None:
                log.info("reaper: every %gs, abandoned jobs are failed", reap_every)
                tasks.start_soon(_every, reap_every, metrics, _reap, store)
            if keep_for is not None:
                log.info(
                    "pruning: log events older than %s, every %gs",
                    keep_for,
                    settings.prune_interval,
                )
                tasks.start_soon(_every, settings.prune_interval, metrics, _prune, store, keep_for)
            if store.backend.event_partitions() is not None:
                # A partitioned log_events needs partitions ahead, retention or not.
                every = functools.partial(_every, start_now=True)
                tasks.start_soon(every, settings.prune_interval, metrics, _partitions, store)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        _app.state.read_threads.shutdown(wait=False)
        _app.state.read_threads = None
        metrics.close()
        if owns_store:
            store.close()

    app = FastAPI(
        title="joblog",
        version=__version__,
        description="Jobs, steps and log events, found by any ID a GUI holds.",
        lifespan=lifespan,
        docs_url=None,  # served offline by joblog.api.docs
        redoc_url=None,
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
    app.state.sessions = sessions = SessionBook(guard, store, settings.session_max_age)
    app.state.producer = ProducerWrites(
        store, external_id_policy=settings.external_id_policy, attach=resolver.attach
    )
    app.state.metrics = metrics = AppMetrics(store, tracker=lambda: app.state.tracker)
    app.state.hub = hub = ChangeHub(
        store, poll_interval=settings.poll_interval, safety_interval=settings.safety_interval
    )
    app.state.summaries = summaries = SummaryCache()
    app.state.stream_polls = stream.SharedPolls()
    hub.on_change.append(lambda keys: summaries.forget(key for kind, key in keys if kind == "j"))
    app.state.tracker = None
    app.state.reap_interval = reap_every
    #: (task, "ran" | "skipped") -> rounds of housekeeping this process did or stood aside for.
    install_error_handlers(app)
    if store.replica is not None:
        # Innermost: which database a request reads (a refused request reads nothing).
        app.add_middleware(ReadRouting, store=store)
    # Inside access control (a client is authenticated first), outside every route.
    app.add_middleware(InputGuard, refusals=_refusals())
    # Inside the metrics middleware, so that refused requests are counted too.
    install_access_control(app, guard, settings.max_body_bytes, sessions)
    # Outside access control (refusals over 1 KB are compressed too), inside the metrics.
    app.add_middleware(Compression)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    # Outermost of ours: every answer, refusals included, gets the security headers.
    app.add_middleware(SecurityHeaders)
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
    app.include_router(routes_traces.router, dependencies=read_auth, responses=read_errors)
    app.include_router(routes_jobs.status_router, dependencies=read_auth, responses=read_errors)
    app.include_router(routes_ops.router, responses=read_errors)
    if settings.write_api:
        app.include_router(routes_write.router)
        app.include_router(routes_otlp.router)
    app.include_router(routes_login.router)
    install_docs(app)
    install_examples(app)
    _include_dashboard(app)
    return app


def _error_docs(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, so clients (and Schemathesis) expect them."""
    return {code: {"model": ErrorBody, "description": text} for code, text in described.items()}


def _refusals() -> tuple[tuple[str, Refusal], ...]:
    """How the input guard answers, by path prefix: the origin's contract, JSON, pages."""
    from joblog.web.pages import refusal as page_refusal

    json_paths = ("/api/", "/v1/", "/healthz", "/metrics", "/openapi.json")
    return (
        (failover.PREFIX, failover.refusal),
        *((prefix, json_refusal) for prefix in json_paths),
        ("/", page_refusal),
    )


def _include_dashboard(app: FastAPI) -> None:
    from joblog.web.pages import build_router

    app.include_router(build_router())


#: Seconds between two samples of this worker's pool gauges (multiprocess mode only).
_SAMPLE_INTERVAL = 5.0


async def _every(
    interval: float,
    metrics: AppMetrics,
    job: Callable[..., object],
    *args: Any,
    start_now: bool = False,
) -> None:
    """Run the housekeeping ``job`` in a worker thread every ``interval`` seconds.

    Rounds fall on multiples of ``interval`` on the wall clock, so the servers sharing a
    database start theirs together: one takes the task's lease, the others skip the round.
    """
    if start_now:
        await _run_job(metrics, job, *args)
    while True:
        await anyio.sleep(interval - time.time() % interval)
        await _run_job(metrics, job, *args)


async def _run_job(metrics: AppMetrics, job: Callable[..., object], *args: Any) -> None:
    """One round, counted in ``joblog_housekeeping_runs_total``: ``failed`` when it
    raised, ``skipped`` when another server held the lease (the run says so, or the job
    returned False), else ``ran``."""
    task = job.__name__.strip("_")
    try:
        result = await run_in_threadpool(job, *args)
    except JobLogError as exc:  # the database may be down; try again next time
        log.warning("%s failed: %s", task, exc)
        metrics.count_housekeeping(task, "failed")
        return
    outcome = getattr(result, "outcome", None) or ("skipped" if result is False else "ran")
    metrics.count_housekeeping(task, outcome)


def _logged(run: HousekeepingRun) -> HousekeepingRun:
    """Log the round at INFO when it changed something, else at DEBUG."""
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
    return run


def _reap(store: Store) -> HousekeepingRun:
    return _logged(store.housekeeping.run_reap())


def _prune(store: Store, retention: timedelta) -> HousekeepingRun:
    return _logged(store.housekeeping.run_prune(retention))


def _partitions(store: Store) -> HousekeepingRun:
    return _logged(store.housekeeping.run_partitions())
