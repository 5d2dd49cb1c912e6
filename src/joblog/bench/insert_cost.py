"""What each strategy costs at insert time: the same bulk load with and without it.

A fresh database per variant: joblog's schema without either external-ID index (the
baseline), then the baseline plus exactly one strategy's index or table. The JSON
search adds no index, so it costs nothing here (it pays at lookup time instead).
"""

from __future__ import annotations

import time
from typing import Any

from joblog.bench.backends import BenchDatabase, Connection
from joblog.bench.progress import Reporter
from joblog.bench.strategies import CORRELATION_DDL, CORRELATION_INDEX_DDL, PREFIX_INDEX_DDL
from joblog.bench.workload import generate, jobs_for_events
from joblog.storage.store import Store

__all__ = ["VARIANTS", "run_insert_cost"]

_EXTERNAL_ID_INDEXES = (
    ("log_events", "idx_log_events_external_job_id"),
    ("job_tracking", "idx_job_tracking_external_job_id"),
)
VARIANTS = ("baseline", "events_column", "jobs_column", "message_prefix", "correlation_table")


def scratch_database(db: BenchDatabase) -> BenchDatabase:
    url = db.url
    if db.backend == "sqlite":
        return BenchDatabase(url.set(database=f"{url.database}-insert-cost.db"))
    return BenchDatabase(url.set(database=f"{url.database}_ins"))


def _drop_index(db: BenchDatabase, conn: Connection, table: str, index: str) -> None:
    if db.backend == "mariadb":
        db.execute(conn, f"DROP INDEX {index} ON {table}")
    else:
        db.execute(conn, f"DROP INDEX {index}")


def _create_index(db: BenchDatabase, conn: Connection, table: str, index: str) -> None:
    column = "external_job_id"
    db.execute(conn, f"CREATE INDEX {index} ON {table} ({column})")


def _prepare(db: BenchDatabase, conn: Connection, variant: str) -> None:
    for table, index in _EXTERNAL_ID_INDEXES:
        _drop_index(db, conn, table, index)
    if variant == "events_column":
        _create_index(db, conn, *_EXTERNAL_ID_INDEXES[0])
    elif variant == "jobs_column":
        _create_index(db, conn, *_EXTERNAL_ID_INDEXES[1])
    elif variant == "message_prefix":
        db.execute(conn, PREFIX_INDEX_DDL[db.backend])
    elif variant == "correlation_table":
        for statement in CORRELATION_DDL[db.backend] + CORRELATION_INDEX_DDL:
            db.execute(conn, statement)


def load_rate(db: BenchDatabase, variant: str, events: int) -> float:
    """Events per second of one bulk load of ``events`` events into a fresh database."""
    db.recreate()
    store = Store(db.sa_url, auto_migrate=False)
    store.create_tables()
    store.close()
    conn = db.connect()
    try:
        _prepare(db, conn, variant)
        chunks = list(generate(0, jobs_for_events(events)))
        started = time.perf_counter()
        for chunk in chunks:
            db.load_chunk(conn, chunk, correlations=variant == "correlation_table")
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return sum(len(chunk.events) for chunk in chunks) / elapsed


def run_insert_cost(db: BenchDatabase, events: int, reporter: Reporter) -> dict[str, Any]:
    scratch = scratch_database(db)
    task = reporter.task(f"{db.backend}: insert cost ({events:,} events)", 2 * len(VARIANTS))
    rates: dict[str, float] = {}
    try:
        for _round in range(2):  # best of two: loads are noisy
            for variant in VARIANTS:
                rate = load_rate(scratch, variant, events)
                rates[variant] = max(rates.get(variant, 0.0), rate)
                reporter.advance(task)
    finally:
        scratch.drop()
    reporter.done(task)
    base = rates["baseline"]
    out: dict[str, Any] = {"events": events, "baseline_rate": base, "variants": {}}
    for variant in VARIANTS[1:]:
        out["variants"][variant] = {
            "rate": rates[variant],
            "slowdown_pct": 100 * (base / rates[variant] - 1),
        }
    out["variants"]["json_attrs"] = {"rate": base, "slowdown_pct": 0.0}
    return out
