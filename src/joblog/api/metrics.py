"""Prometheus metrics: request counts and latencies per route template, and writer counters.

Written by hand in the text exposition format (a few dozen lines, no extra dependency).
Routes are labelled by their template (``/api/v1/jobs/{any_id:path}``), never the raw path,
so that the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BUCKETS", "MetricsMiddleware", "RequestMetrics", "render_writer_stats"]

#: Histogram bounds in seconds, from a cached status read to a long page of logs.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(slots=True)
class _Series:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RequestMetrics:
    """Counts and latency histograms keyed by (method, route template, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], _Series] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "OTHER", route, str(status))
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series()
            series.count += 1
            series.total += seconds
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    series.buckets[index] += 1
                    break

    def render(self) -> str:
        with self._lock:
            snapshot = {
                key: (s.count, s.total, list(s.buckets)) for key, s in sorted(self._series.items())
            }
        lines = [
            "# HELP joblog_http_requests_total HTTP requests answered, by route template.",
            "# TYPE joblog_http_requests_total counter",
        ]
        for (method, route, status), (count, _total, _buckets) in snapshot.items():
            labels = f'method="{method}",route="{_label(route)}",status="{status}"'
            lines.append(f"joblog_http_requests_total{{{labels}}} {count}")
        lines += [
            "# HELP joblog_http_request_duration_seconds Time to answer, by route template.",
            "# TYPE joblog_http_request_duration_seconds histogram",
        ]
        for (method, route, status), (count, total, buckets) in snapshot.items():
            labels = f'method="{method}",route="{_label(route)}",status="{status}"'
            cumulative = 0
            for bound, hits in zip(BUCKETS, buckets, strict=True):
                cumulative += hits
                lines.append(
                    f'joblog_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                    f"{cumulative}"
                )
            lines.append(
                f'joblog_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {count}'
            )
            lines.append(f"joblog_http_request_duration_seconds_sum{{{labels}}} {total:.6f}")
            lines.append(f"joblog_http_request_duration_seconds_count{{{labels}}} {count}")
        return "\n".join(lines) + "\n"


_WRITER_METRICS = (
    ("queued", "joblog_writer_queue_depth", "gauge", "Events and operations waiting."),
    ("written", "joblog_writer_events_written_total", "counter", "Events stored."),
    ("dropped", "joblog_writer_events_dropped_total", "counter", "Events dropped (full queue)."),
    ("failed", "joblog_writer_events_failed_total", "counter", "Events the database refused."),
    ("batches", "joblog_writer_batches_total", "counter", "Batches written."),
    ("retries", "joblog_writer_retries_total", "counter", "Batch retries after errors."),
)


def render_writer_stats(tracker: Any) -> str:
    """The writer's counters of ``tracker`` (anything with ``stats() -> WriterStats``)."""
    if tracker is None or not callable(getattr(tracker, "stats", None)):
        return ""
    stats = tracker.stats()
    lines: list[str] = []
    for attribute, name, kind, help_text in _WRITER_METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines.append(f"{name} {int(getattr(stats, attribute, 0))}")
    lines += [
        "# HELP joblog_writer_healthy 1 while the writer's last batch succeeded.",
        "# TYPE joblog_writer_healthy gauge",
        f"joblog_writer_healthy {1 if getattr(stats, 'healthy', False) else 0}",
    ]
    return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task): times each HTTP request."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
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
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)
