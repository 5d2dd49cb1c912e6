"""``joblog bench ingest``: logging calls in a job, through the batch writer, per backend.

Three numbers per backend, all from the same run: the bare driver's best bulk insert
rate of ready-made rows (the ceiling), joblog's sustained rate from plain ``logging``
calls (caller thread -> handler -> writer thread -> database), and the caller-side cost
of one logging call next to stdlib logging to a ``NullHandler`` and through a
``QueueHandler`` to a listener that does nothing.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import re
import statistics
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import joblog
from joblog.bench.backends import BenchDatabase
from joblog.bench.progress import Reporter
from joblog.bench.workload import EVENT_COLUMNS
from joblog.storage.store import Store
from joblog.tracker import Tracker

__all__ = ["IngestConfig", "run_ingest", "run_ingest_backend"]

MESSAGE = "copied block %d of disk %s"
TARGETS = {"sqlite": 50_000, "postgresql": 50_000, "mariadb": 30_000}
BURST = 1000


@dataclass
class IngestConfig:
    duration_s: float = 30.0
    bare_events: int = 200_000
    bare_batch_sizes: tuple[int, ...] = (2000, 10_000)
    caller_rounds: int = 60  # bursts of BURST calls per kind of logger
    batch_size: int = 2000  # the Tracker's default
    profile: bool = True  # profile the writer where a target is missed


def _fresh_store(db: BenchDatabase) -> Store:
    db.recreate()
    store = Store(db.sa_url, auto_migrate=False)
    store.create_tables()
    return store


def bare_rows(count: int, job_id: str, external_job_id: str) -> list[tuple[object, ...]]:
    """Rows as the handler makes them: one job's INFO events with a small attrs object."""
    start = datetime(2025, 9, 22, 8, 0, 0)
    attrs = '{"logger": "bench.ingest"}'
    return [
        (
            job_id,
            None,
            external_job_id,
            "INFO",
            MESSAGE % (n, "scsi0:0"),
            attrs,
            start + timedelta(microseconds=n),
        )
        for n in range(count)
    ]


def bare_bulk_rate(db: BenchDatabase, config: IngestConfig, reporter: Reporter) -> dict[str, Any]:
    """Best rate of the driver's bulk path (COPY / multi-row INSERT / executemany)."""
    store = _fresh_store(db)
    store.close()
    conn = db.connect()
    task = reporter.task(f"{db.backend}: bare bulk insert", len(config.bare_batch_sizes))
    job_id = "00000000-0000-4000-8000-000000000001"
    try:
        now = datetime(2025, 9, 22, 8, 0, 0)
        with db.transaction(conn):
            db.bulk_insert(
                conn,
                "job_tracking",
                ("id", "job_type", "operation", "status", "percent_complete", "created_at"),
                [(job_id, "bench", "ingest", "running", 0, now)],
            )
        rows = bare_rows(config.bare_events, job_id, "bench-ingest-bare")
        rates = {}
        for batch in config.bare_batch_sizes:
            started = time.perf_counter()
            for offset in range(0, len(rows), batch):
                with db.transaction(conn):  # one transaction per batch, as the writer does
                    db.bulk_insert(conn, "log_events", EVENT_COLUMNS, rows[offset : offset + batch])
            rates[batch] = len(rows) / (time.perf_counter() - started)
            reporter.advance(task)
    finally:
        conn.close()
    best = max(rates, key=lambda b: rates[b])
    return {"rates": rates, "best_batch": best, "best_rate": rates[best]}


def joblog_rate(db: BenchDatabase, config: IngestConfig, reporter: Reporter) -> dict[str, Any]:
    """Sustained events/s from logging calls inside a job, until all are stored."""
    store = _fresh_store(db)
    tracker = Tracker(store=store, batch_size=config.batch_size)
    log = _logger("bench.ingest.joblog")
    tracker.install_logging(log)
    task = reporter.task(f"{db.backend}: joblog ingest {config.duration_s:.0f}s", config.duration_s)
    calls = 0
    try:
        with tracker.job("bench", "ingest", external_job_id="bench-ingest") as job:
            with job.step("copy"):
                started = time.perf_counter()
                deadline = started + config.duration_s
                next_tick = started + 0.5
                now = started
                while now < deadline:
                    for n in range(BURST):
                        log.info(MESSAGE, n, "scsi0:0")
                    calls += BURST
                    now = time.perf_counter()
                    if now >= next_tick:
                        reporter.update(task, now - started)
                        next_tick = now + 0.5
                produced = time.perf_counter() - started
        tracker.flush()
        elapsed = time.perf_counter() - started
        stats = tracker.stats()
    finally:
        tracker.close()
    reporter.done(task)
    return {
        "calls": calls,
        "written": stats.written,
        "dropped": stats.dropped,
        "failed": stats.failed,
        "batches": stats.batches,
        "produce_seconds": produced,
        "seconds": elapsed,
        "rate": stats.written / elapsed,
    }


def _logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    return log


class _NoOp(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


def caller_cost(db: BenchDatabase, config: IngestConfig, reporter: Reporter) -> dict[str, Any]:
    """Per-call cost in the caller's thread: NullHandler, QueueHandler, joblog (same run).

    The kinds alternate burst by burst so that drift hits all alike, and the background
    thread (writer or listener) finishes each burst before the next starts: this is the
    work the call itself does in the caller's thread; the throughput test above has the
    background work in it.
    """
    null_log = _logger("bench.caller.null")
    null_log.addHandler(logging.NullHandler())
    queue_log = _logger("bench.caller.queue")
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_log.addHandler(logging.handlers.QueueHandler(records))
    listener = logging.handlers.QueueListener(records, _NoOp())
    listener.start()
    store = _fresh_store(db)
    tracker = Tracker(store=store)
    joblog_log = _logger("bench.caller.joblog")
    tracker.install_logging(joblog_log)
    kinds: dict[str, logging.Logger] = {
        "null_handler": null_log,
        "queue_handler": queue_log,
        "joblog": joblog_log,
    }
    bursts: dict[str, list[float]] = {kind: [] for kind in kinds}
    task = reporter.task(f"{db.backend}: caller cost", config.caller_rounds)
    try:
        with tracker.job("bench", "caller-cost", external_job_id="bench-caller"):
            for _round in range(config.caller_rounds):
                for kind, log in kinds.items():
                    bursts[kind].append(_burst(log.info))
                    # Let the background thread finish this burst before the next one.
                    if kind == "joblog":
                        tracker.flush()
                    while kind == "queue_handler" and not records.empty():
                        time.sleep(0.0005)
                reporter.advance(task)
        tracker.flush()
        written = tracker.stats().written
    finally:
        tracker.close()
        listener.stop()
    out: dict[str, Any] = {"calls_per_kind": config.caller_rounds * BURST, "written": written}
    for kind, values in bursts.items():
        out[kind] = {"median_us": statistics.median(values), "mean_us": statistics.fmean(values)}
    return out


def _burst(call: Callable[..., None]) -> float:
    """Mean µs per call over one burst."""
    clock = time.perf_counter_ns
    start = clock()
    for n in range(BURST):
        call(MESSAGE, n, "scsi0:0")
    return (clock() - start) / BURST / 1000


def profile_writer(db: BenchDatabase, config: IngestConfig, seconds: float = 5.0) -> str:
    """A short ingest run with cProfile on the writer thread: its top functions by own time."""
    import cProfile
    import io
    import pstats

    from joblog.writer import BatchWriter

    profiler = cProfile.Profile()
    original = BatchWriter._run

    def profiled(self: BatchWriter) -> None:
        profiler.runcall(original, self)

    BatchWriter._run = profiled  # type: ignore[method-assign]
    try:
        short = IngestConfig(duration_s=seconds, batch_size=config.batch_size)
        joblog_rate(db, short, Reporter(enabled=False))
    finally:
        BatchWriter._run = original  # type: ignore[method-assign]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return relative_paths("\n".join(lines[:1] + lines[start:]))


def relative_paths(text: str) -> str:
    """Profile lines without this machine's directories: joblog/..., psycopg/..., threading.py."""
    roots = {
        str(Path(joblog.__file__).resolve().parent.parent),  # .../src
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        sysconfig.get_paths()["stdlib"],
    }
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "")
    return re.sub(r"\S*/site-packages/", "", text)


def run_ingest_backend(
    db: BenchDatabase, config: IngestConfig, reporter: Reporter
) -> dict[str, Any]:
    try:
        bare = bare_bulk_rate(db, config, reporter)
        joblog = joblog_rate(db, config, reporter)
        caller = caller_cost(db, config, reporter)
        missed = joblog["rate"] < max(0.7 * bare["best_rate"], TARGETS[db.backend])
        profile = profile_writer(db, config) if missed and config.profile else None
    finally:
        db.drop()
    out = {"backend": db.backend, "bare": bare, "joblog": joblog, "caller": caller}
    if profile:
        out["profile"] = profile
    return out


def run_ingest(
    databases: list[BenchDatabase], config: IngestConfig, reporter: Reporter
) -> dict[str, Any]:
    return {
        "config": {
            "duration_s": config.duration_s,
            "bare_events": config.bare_events,
            "batch_size": config.batch_size,
        },
        "results": [run_ingest_backend(db, config, reporter) for db in databases],
    }
