"""Prometheus metrics of one app, on ``prometheus_client``, in a registry of the app's own.

Every family is prefixed ``joblog_``:

* ``http_requests_total`` / ``http_request_duration_seconds`` ``{method, route, status}``:
  routes are labelled by their template (``/api/v1/jobs/{any_id:path}``), never the raw
  path, so the number of series stays bounded whatever clients send;
* ``ingest_events_total``, ``ingest_batches_total{outcome}``,
  ``ingest_events_rejected_total`` ``{source}``: what the server's own ingest routes
  stored (``source="http"``: ``POST /api/v1/events``; ``"otlp"``: ``POST /v1/logs``);
* ``jobs{job_type, status}``: read from the database at most every few seconds
  (:class:`~joblog.api.collectors.JobCounts`);
* ``writer_*``: the counters of a tracker attached as ``app.state.tracker``;
* ``streams_open``, ``db_pool_connections_in_use{engine}``, ``db_pool_size{engine}``,
  ``housekeeping_runs_total{task, outcome}``; and the process's own ``process_*`` and
  ``python_*`` families.

Each app has its own :class:`~prometheus_client.CollectorRegistry`, so several apps in
one process (tests) never share a series. Under several worker processes
(``PROMETHEUS_MULTIPROC_DIR`` set before the workers start) the counters, histograms and
gauges of every worker are summed by prometheus_client's multiprocess mode; the
database's job counts are the same from any worker; per-process CPU and memory are left
out there (``process_*`` would describe only the worker that answered).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from joblog.api.collectors import JobCounts, WriterCounters
from joblog.storage.store import Store

__all__ = [
    "BATCH_OUTCOMES",
    "BUCKETS",
    "HOUSEKEEPING_OUTCOMES",
    "HOUSEKEEPING_TASKS",
    "MULTIPROCESS_ENV",
    "SOURCES",
    "AppMetrics",
    "MetricsMiddleware",
    "multiprocess_directory",
]

#: Histogram bounds in seconds, from a cached status read to a long page of logs.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Set (to an empty directory) before worker processes start: their metrics are summed.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The ingest routes (``source`` label) and what became of a batch (``outcome``).
SOURCES = ("http", "otlp")
BATCH_OUTCOMES = ("stored", "duplicate", "refused", "failed")
HOUSEKEEPING_TASKS = ("reap", "prune")
HOUSEKEEPING_OUTCOMES = ("ran", "skipped", "failed")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess_directory() -> str:
    """Make an empty directory for prometheus_client's multiprocess mode and put it in
    ``PROMETHEUS_MULTIPROC_DIR``, for worker processes started afterwards to inherit:
    whatever starts several workers (``joblog serve --workers N``) calls this first. The
    mode is chosen when a process imports prometheus_client, so it takes effect in the
    workers, not in the process that calls this."""
    path = tempfile.mkdtemp(prefix="joblog-metrics-")
    os.environ[MULTIPROCESS_ENV] = path
    return path


class AppMetrics:
    """The metrics of one app: its registry, and what the routes and middleware count."""

    def __init__(
        self, store: Store, *, tracker: Callable[[], Any] = lambda: None, jobs_ttl: float = 5.0
    ) -> None:
        """``tracker()``: the tracker whose writer counters to add (``app.state.tracker``)."""
        self.store = store
        #: prometheus_client chose its multiprocess values when it was imported.
        self.multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
        #: What ``/metrics`` exposes.
        self.registry = CollectorRegistry()
        # In multiprocess mode the values live in files that MultiProcessCollector sums;
        # the metric objects must then stay out of the exposed registry (twice otherwise).
        own = CollectorRegistry() if self.multiprocess else self.registry
        labels = ("method", "route", "status")
        self.requests = Counter(
            "joblog_http_requests",
            "HTTP requests answered, by route template.",
            labels,
            registry=own,
        )
        self.latency = Histogram(
            "joblog_http_request_duration_seconds",
            "Time to answer, by route template.",
            labels,
            buckets=BUCKETS,
            registry=own,
        )
        self.ingested = Counter(
            "joblog_ingest_events",
            "Log events the server's ingest routes stored.",
            ("source",),
            registry=own,
        )
        self.batches = Counter(
            "joblog_ingest_batches",
            "Ingest requests (batches) by outcome: stored, duplicate (a batch key seen "
            "before: a retry), refused (4xx), failed (the database did not store them).",
            ("source", "outcome"),
            registry=own,
        )
        self.rejected = Counter(
            "joblog_ingest_events_rejected",
            "Log events refused: in refused batches, or OTLP records rejected one by one.",
            ("source",),
            registry=own,
        )
        self.housekeeping = Counter(
            "joblog_housekeeping_runs",
            "Housekeeping runs (reap, prune) by outcome: ran, skipped, failed.",
            ("task", "outcome"),
            registry=own,
        )
        self.streams = Gauge(
            "joblog_streams_open",
            "Live streams (Server-Sent Events) open.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.pool_in_use = Gauge(
            "joblog_db_pool_connections_in_use",
            "Database connections checked out of the pool, by engine (read, write).",
            ("engine",),
            registry=own,
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "joblog_db_pool_size",
            "Connections the pool keeps, by engine (read, write).",
            ("engine",),
            registry=own,
            multiprocess_mode="livesum",
        )
        # Every series a dashboard sums exists from the start, at 0.
        for source in SOURCES:
            self.ingested.labels(source)
            self.rejected.labels(source)
            for outcome in BATCH_OUTCOMES:
                self.batches.labels(source, outcome)
        for task in HOUSEKEEPING_TASKS:
            for outcome in HOUSEKEEPING_OUTCOMES:
                self.housekeeping.labels(task, outcome)
        if self.multiprocess:
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.registry.register(JobCounts(store.reads, ttl=jobs_ttl))
        self.registry.register(WriterCounters(tracker))
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    # -- counting ----------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "OTHER", route, str(status))
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(*key),
                self.latency.labels(*key),
            )
        children[0].inc()
        children[1].observe(seconds)

    def count_batch(self, source: str, outcome: str, events: int) -> None:
        """One ingest request of ``events`` events: ``stored``, ``duplicate``, ``refused``
        or ``failed``."""
        self.batches.labels(source, outcome).inc()
        if outcome == "stored":
            self.ingested.labels(source).inc(events)
        elif outcome == "refused":
            self.rejected.labels(source).inc(events)

    def count_rejected(self, source: str, events: int) -> None:
        """Events refused one by one (OTLP records in a partial success)."""
        if events:
            self.rejected.labels(source).inc(events)

    def count_housekeeping(self, task: str, outcome: str) -> None:
        self.housekeeping.labels(task, outcome).inc()

    # -- exposing ----------------------------------------------------------------------------

    def sample(self) -> None:
        """Read the values that live elsewhere (the pools) into their gauges."""
        for engine, (in_use, size) in self.store.pool_status().items():
            self.pool_in_use.labels(engine).set(in_use)
            self.pool_size.labels(engine).set(size)

    async def sample_every(self, interval: float) -> None:
        """Multiprocess mode: keep this worker's pool gauges fresh for scrapes that
        another worker answers (run in the app's lifespan)."""
        while True:
            self.sample()
            await anyio.sleep(interval)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (OpenMetrics when ``accept`` asks for it) and its content type."""
        self.sample()
        try:
            encoder, content_type = choose_encoder(accept or "")
        except (ValueError, TypeError):  # a malformed version in Accept: the plain format
            encoder, content_type = choose_encoder("")
        return encoder(self.registry), content_type

    def close(self) -> None:
        """Forget this process's live gauges (multiprocess mode: the worker is leaving)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task): times each HTTP request."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            # The router records the matched route in the (shared) scope.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(
                scope["method"], route, status, time.perf_counter() - start
            )
