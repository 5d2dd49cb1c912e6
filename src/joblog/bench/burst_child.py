"""One measurement of ``joblog bench ingest``, run in a process of its own.

``python -m joblog.bench.burst_child '<json>'`` runs one kind (``bare``, ``joblog``,
``stdlib``, ``null``, ``kill``, ``ship``) and prints one JSON line: its counts, its
seconds and the process's peak RSS. A process per measurement, so that no run shares
another's peak memory, its garbage or its warm caches.

Every kind makes the same rows: one job's INFO events ``copied block <i> of disk disk-0``
with attrs ``{"logger": ..., "bytes": 65536}``, as the logging handler stores them.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from joblog.bench.backends import BenchDatabase, Connection

__all__ = ["LOGGER", "MESSAGE", "main", "run"]

MESSAGE = "copied block %d of disk %s"
LOGGER = "bench.burst"
EXTRA = {"bytes": 65536}
JOB_ID = "00000000-0000-4000-8000-00000000b0b0"
EXTERNAL_JOB_ID = "bench-burst"
#: Rows per transaction of the bare driver and of the stdlib pipeline.
BARE_BATCH = 10_000
PIPELINE_BATCH = 2000
EVENT_COLUMNS = ("job_id", "step_id", "external_job_id", "level", "message", "attrs", "ts")


def peak_rss_bytes() -> int:
    """This process's peak resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    return log


def _burst(log: logging.Logger, count: int, after: Callable[[int], None] | None = None) -> float:
    """``count`` logging calls as a user writes them; the seconds they took."""
    info = log.info
    started = time.perf_counter()
    for n in range(count):
        info(MESSAGE, n, "disk-0", extra=EXTRA)
    if after is not None:
        after(count)
    return time.perf_counter() - started


# -- the bare driver ------------------------------------------------------------------------


def _row_maker(backend: str) -> Callable[[str, float], tuple[object, ...]]:
    """A row of the driver's own types: SQLite gets its text timestamp ready-made."""
    attrs = json.dumps({"logger": LOGGER, **EXTRA})

    def make(message: str, created: float) -> tuple[object, ...]:
        ts = datetime(1970, 1, 1) + timedelta(seconds=created)
        value: object = ts.isoformat(" ", "microseconds") if backend == "sqlite" else ts
        return (JOB_ID, None, EXTERNAL_JOB_ID, "INFO", message, attrs, value)

    return make


def insert_rows(db: BenchDatabase, conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """The driver's bulk path, in one transaction: executemany (SQLite, PyMySQL's
    multi-row INSERT) or COPY (psycopg)."""
    with db.transaction(conn):
        if db.backend == "postgresql":
            columns = ", ".join(EVENT_COLUMNS)
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY log_events ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([db.paramstyle] * len(EVENT_COLUMNS))
        cursor = conn.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO log_events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})", rows
            )
        finally:
            cursor.close()


def add_job(db: BenchDatabase, conn: Connection) -> None:
    now = datetime(2025, 9, 22, 8, 0, 0)
    with db.transaction(conn):
        db.bulk_insert(
            conn,
            "job_tracking",
            ("id", "job_type", "operation", "status", "percent_complete", "created_at",
             "external_job_id"),
            [(JOB_ID, "bench", "burst", "running", 0, now, EXTERNAL_JOB_ID)],
        )  # fmt: skip


def run_bare(db: BenchDatabase, count: int) -> dict[str, Any]:
    """Ready-made rows (made before the clock starts) through the driver's bulk path."""
    conn = db.connect()
    try:
        add_job(db, conn)
        make = _row_maker(db.backend)
        now = time.time()
        rows = [make(MESSAGE % (n, "disk-0"), now + n * 1e-6) for n in range(count)]
        started = time.perf_counter()
        for offset in range(0, count, BARE_BATCH):
            insert_rows(db, conn, rows[offset : offset + BARE_BATCH])
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return {"stored": count, "seconds": seconds}


# -- stdlib: QueueHandler -> QueueListener -> a handler that inserts ------------------------


class _DriverHandler(logging.Handler):
    """What a user writes by hand: rows from records, a bulk insert every ``PIPELINE_BATCH``."""

    def __init__(self, db: BenchDatabase) -> None:
        super().__init__()
        self._db = db
        self._conn = _connect_any_thread(db)
        self._make = _row_maker(db.backend)
        self._rows: list[tuple[object, ...]] = []
        self.stored = 0

    def emit(self, record: logging.LogRecord) -> None:
        self._rows.append(self._make(record.getMessage(), record.created))
        if len(self._rows) >= PIPELINE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            insert_rows(self._db, self._conn, self._rows)
            self.stored += len(self._rows)
            self._rows = []

    def close(self) -> None:
        self.flush()
        self._conn.close()
        super().close()


def _connect_any_thread(db: BenchDatabase) -> Connection:
    """The listener's thread inserts; the main thread closes (SQLite checks threads)."""
    if db.backend != "sqlite":
        return db.connect()
    import sqlite3

    conn = sqlite3.connect(str(db.url.database), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def run_stdlib(db: BenchDatabase, count: int) -> dict[str, Any]:
    import queue

    conn = db.connect()
    try:
        add_job(db, conn)
    finally:
        conn.close()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    sink = _DriverHandler(db)
    listener = logging.handlers.QueueListener(records, sink)
    log = _logger(LOGGER)
    log.addHandler(logging.handlers.QueueHandler(records))
    listener.start()
    started = time.perf_counter()
    produced = _burst(log, count)
    listener.stop()  # drains the queue
    sink.close()
    seconds = time.perf_counter() - started
    return {"stored": sink.stored, "seconds": seconds, "produce_seconds": produced}


# -- joblog ---------------------------------------------------------------------------------


def _tracker(db: BenchDatabase, **options: Any) -> Any:
    from joblog.storage.store import Store
    from joblog.tracker import Tracker

    return Tracker(store=Store(db.sa_url, auto_migrate=False), **options)


def run_joblog(db: BenchDatabase, count: int, options: dict[str, Any]) -> dict[str, Any]:
    tracker = _tracker(db, **options)
    log = _logger(LOGGER)
    tracker.install_logging(log)
    try:
        with tracker.job("bench", "burst", external_job_id=EXTERNAL_JOB_ID):
            started = time.perf_counter()
            produced = _burst(log, count)
            tracker.flush()
            seconds = time.perf_counter() - started
        tracker.flush()
        stats = tracker.stats()
    finally:
        tracker.close()
    return {
        "stored": stats.written,
        "dropped": stats.dropped,
        "failed": stats.failed,
        "spilled": stats.spilled,
        "seconds": seconds,
        "produce_seconds": produced,
    }


def run_null(count: int) -> dict[str, Any]:
    log = _logger(LOGGER)
    log.addHandler(logging.NullHandler())
    return {"stored": 0, "seconds": _burst(log, count), "produce_seconds": _burst(log, count)}


def run_kill(db: BenchDatabase, count: int, journal_dir: str, sync_interval: float) -> None:
    """``count`` calls with ``durability="journal"``, then SIGKILL of this process."""
    tracker = _tracker(
        db, durability="journal", journal_dir=journal_dir, journal_sync_interval=sync_interval
    )
    log = _logger(LOGGER)
    tracker.install_logging(log)
    job = tracker.job("bench", "burst", external_job_id=EXTERNAL_JOB_ID)
    job.__enter__()
    produced = _burst(log, count)
    # The caller's rate tells how many lines one sync interval holds.
    sys.stdout.write(json.dumps({"produce_seconds": produced}) + "\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def run_ship(db: BenchDatabase, journal_dir: str) -> dict[str, Any]:
    """The next Tracker on a killed producer's journal: what it ships."""
    started = time.perf_counter()
    tracker = _tracker(db, durability="journal", journal_dir=journal_dir)
    try:
        tracker.flush()
        seconds = time.perf_counter() - started
        stats = tracker.stats()
    finally:
        tracker.close()
    return {"stored": stats.written, "shipped": stats.shipped, "seconds": seconds}


def run_profile(db: BenchDatabase, count: int, options: dict[str, Any]) -> dict[str, Any]:
    """The joblog run under cProfile: the caller's thread and the writer's, top functions
    by own time (cProfile slows both; the shares are what it is for)."""
    import cProfile

    from joblog.writer import BatchWriter

    caller, writer = cProfile.Profile(), cProfile.Profile()
    original_run, original_burst = BatchWriter._run, globals()["_burst"]

    def run_writer(self: BatchWriter) -> None:
        writer.runcall(original_run, self)

    def burst(*args: Any) -> float:
        return float(caller.runcall(original_burst, *args))

    BatchWriter._run = run_writer  # type: ignore[method-assign]
    globals()["_burst"] = burst
    try:
        result = run_joblog(db, count, options)
    finally:
        BatchWriter._run = original_run  # type: ignore[method-assign]
        globals()["_burst"] = original_burst
    result["caller_profile"] = _top(caller)
    result["writer_profile"] = _top(writer)
    return result


def _top(profile: Any, limit: int = 12) -> str:
    import io
    import pstats

    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(limit)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return relative_paths("\n".join(lines[:1] + lines[start:]))


def relative_paths(text: str) -> str:
    """Profile lines without this machine's directories (joblog/..., logging/__init__.py)."""
    import re
    import sysconfig
    from pathlib import Path

    import joblog

    roots = {
        str(Path(joblog.__file__).resolve().parent.parent),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        sysconfig.get_paths()["stdlib"],
    }
    for root in sorted(roots, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "")
    return re.sub(r"\S*/(site-packages|python3\.\d+)/", "", text)


def cpu_seconds() -> float:
    """User and system CPU of this process and the children it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(spec: dict[str, Any]) -> dict[str, Any] | None:
    kind, count = spec["kind"], int(spec.get("count", 0))
    db = BenchDatabase.from_url(spec["url"]) if "url" in spec else None
    if kind == "null":
        result = run_null(count)
    elif kind == "kill":
        assert db is not None
        run_kill(db, count, spec["journal_dir"], float(spec["sync_interval"]))
        return None
    else:
        assert db is not None
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "bare": lambda: run_bare(db, count),
            "stdlib": lambda: run_stdlib(db, count),
            "joblog": lambda: run_joblog(db, count, spec.get("options", {})),
            "profile": lambda: run_profile(db, count, spec.get("options", {})),
            "ship": lambda: run_ship(db, spec["journal_dir"]),
        }
        result = runners[kind]()
    result["peak_rss"] = peak_rss_bytes()
    result["cpu_seconds"] = cpu_seconds()
    return result


def main() -> None:
    result = run(json.loads(sys.argv[1]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
