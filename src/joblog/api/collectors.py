"""Metrics read when ``/metrics`` is scraped: job counts from the database, writer counters.

Both are prometheus_client custom collectors (``collect()`` yields metric families), so
their values are read at scrape time rather than pushed. :class:`JobCounts` keeps the
database's answer for a few seconds, so that several scrapers, or a fast one, cost one
query per ``ttl``; while the database does not answer it reports no job samples and
counts the failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from joblog.exceptions import JobLogError
from joblog.storage.reader import Reader

__all__ = ["MAX_JOB_TYPES", "OTHER_TYPES", "JobCounts", "WriterCounters"]

log = logging.getLogger("joblog.api")

#: Job types beyond the largest this many are summed under :data:`OTHER_TYPES`, so that a
#: producer inventing types cannot grow the series without bound.
MAX_JOB_TYPES = 50
OTHER_TYPES = "_other"


class JobCounts:
    """``joblog_jobs{job_type, status}`` from one grouped query, cached ``ttl`` seconds."""

    def __init__(self, reads: Reader, *, ttl: float = 5.0) -> None:
        self.reads = reads
        self.ttl = ttl
        self.queries = 0
        self._errors = 0
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] | None = None
        self._read_at = float("-inf")

    def describe(self) -> list[Metric]:
        return list(self._families(None))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._current())

    def _current(self) -> dict[tuple[str, str], int] | None:
        with self._lock:  # one query at a time; a scrape waiting here gets its answer
            if time.monotonic() - self._read_at < self.ttl:
                return self._counts
            try:
                rows = self.reads.job_counts()
            except JobLogError as error:
                log.debug("job counts for /metrics: %s", error)
                self._errors += 1
                self._counts = None
            else:
                self.queries += 1
                self._counts = _bounded(rows)
            self._read_at = time.monotonic()
            return self._counts

    def _families(self, counts: dict[tuple[str, str], int] | None) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "joblog_jobs",
            "Jobs in the database by type and status (read at most every "
            f"{self.ttl:g}s; types past the {MAX_JOB_TYPES} largest as {OTHER_TYPES!r}).",
            labels=("job_type", "status"),
        )
        for (job_type, status), number in sorted((counts or {}).items()):
            jobs.add_metric((job_type, status), number)
        yield jobs
        errors = CounterMetricFamily(
            "joblog_jobs_read_errors",
            "Scrapes that could not read the job counts (the database did not answer).",
        )
        errors.add_metric((), self._errors)
        yield errors


def _bounded(rows: list[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    totals: dict[str, int] = {}
    for job_type, _status, number in rows:
        totals[job_type] = totals.get(job_type, 0) + number
    kept = set(sorted(totals, key=lambda name: (-totals[name], name))[:MAX_JOB_TYPES])
    counts: dict[tuple[str, str], int] = {}
    for job_type, status, number in rows:
        key = (job_type if job_type in kept else OTHER_TYPES, status)
        counts[key] = counts.get(key, 0) + number
    return counts


#: (WriterStats attribute, family name, type, help). Counters are named without _total.
_WRITER = (
    ("queued", "joblog_writer_queue_depth", "gauge", "Events and operations waiting."),
    ("written", "joblog_writer_events_written", "counter", "Events stored."),
    ("batches", "joblog_writer_batches", "counter", "Batches written."),
    ("retries", "joblog_writer_retries", "counter", "Batch retries after errors."),
    ("dropped", "joblog_writer_events_dropped", "counter", "Events dropped (full queue)."),
    ("failed", "joblog_writer_events_failed", "counter", "Events the database refused."),
    (
        "dead_lettered",
        "joblog_writer_events_dead_lettered",
        "counter",
        "Events written to the dead-letter file (also counted as failed).",
    ),
    ("restarts", "joblog_writer_restarts", "counter", "Times the writer thread was restarted."),
    ("healthy", "joblog_writer_healthy", "gauge", "1 while the writer's last batch succeeded."),
)


class WriterCounters:
    """The counters of the writer of the tracker ``tracker()`` returns (``joblog demo``
    runs one in the server's process); nothing while it returns None."""

    def __init__(self, tracker: Callable[[], Any]) -> None:
        self.tracker = tracker

    def describe(self) -> list[Metric]:
        return [_writer_family(name, kind, text) for _, name, kind, text in _WRITER]

    def collect(self) -> Iterator[Metric]:
        tracker = self.tracker()
        if tracker is None or not callable(getattr(tracker, "stats", None)):
            return
        stats = tracker.stats()
        for attribute, name, kind, text in _WRITER:
            family = _writer_family(name, kind, text)
            family.add_metric((), int(getattr(stats, attribute, 0) or 0))
            yield family


def _writer_family(name: str, kind: str, text: str) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, text)
    return GaugeMetricFamily(name, text)
