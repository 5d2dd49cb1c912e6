"""``joblog bench retention``: removing old events on PostgreSQL, partition drop vs DELETE.

One run loads the same events twice: into a plain ``log_events`` (an older database) and
into a partitioned one (a new database, a partition per day). ``events`` of them are older
than the retention, spread over ``old_days`` days; a tenth as many are newer and stay.
Then, each on its own database:

* **DELETE, joblog**: ``Housekeeping.prune`` on the plain table (batches of 1,000 ids, a
  transaction each: what joblog did before partitions, and still does on SQLite/MariaDB);
* **DELETE, bare** (the control): one ``DELETE ... WHERE ts < cutoff`` statement on a copy
  of the plain database, what the database does at best without batching;
* **partition drop, joblog**: ``Housekeeping.prune`` on the partitioned table.

Each reports seconds, WAL written (``pg_current_wal_lsn()`` before and after: the server's
WAL is shared by every database on it, so other activity on the server counts too), the
table's size after, and dead rows left for VACUUM. Last, the plain table's copy is converted
online (``joblog db partition``) while a writer keeps writing: the swap's lock and the
writer's slowest batch are the stall.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joblog._ids import utcnow
from joblog._ops import EVENT_COLUMNS, EventRow, InsertEvents
from joblog.bench.backends import BenchDatabase
from joblog.bench.progress import Reporter
from joblog.storage import migrate
from joblog.storage.maintenance import ConversionReport
from joblog.storage.store import Store

__all__ = ["RetentionConfig", "load_note", "render_retention", "run_retention"]

CHUNK = 50_000


@dataclass
class RetentionConfig:
    events: int = 10_000_000  # older than the retention: what a prune removes
    old_days: int = 10
    retention_days: int = 7
    batch_size: int = 1000


def run_retention(
    dbs: list[BenchDatabase], config: RetentionConfig, reporter: Reporter
) -> dict[str, Any]:
    """The retention section's numbers (PostgreSQL only: the others have no partitions)."""
    servers = [db for db in dbs if db.backend == "postgresql"]
    if not servers:
        return {"skipped": "PostgreSQL only", "results": []}
    base = servers[0]
    now = utcnow()
    cutoff_age = timedelta(days=config.retention_days)
    plain = _database(base, "plain")
    partitioned = _database(base, "partitioned")
    load = reporter.task("retention: loading the events", 2 * _total(config))
    _build(plain, new=False, now=now, config=config, advance=lambda n: reporter.advance(load, n))
    _build(
        partitioned, new=True, now=now, config=config, advance=lambda n: reporter.advance(load, n)
    )
    control = plain.copy_as(f"{plain.url.database}_control")
    converted = plain.copy_as(f"{plain.url.database}_converted")
    task = reporter.task("retention: prune, DELETE and drop", 4)
    results = []
    try:
        results.append(
            _measure(
                "DELETE, joblog (batches of 1,000)",
                plain,
                lambda: _prune(plain, cutoff_age, config),
            )
        )
        reporter.advance(task)
        results.append(
            _measure(
                "DELETE, bare (one statement)",
                control,
                lambda: _bare_delete(control, now - cutoff_age),
            )
        )
        reporter.advance(task)
        results.append(
            _measure(
                "partition drop, joblog",
                partitioned,
                lambda: _prune(partitioned, cutoff_age, config),
            )
        )
        reporter.advance(task)
        conversion = _convert_while_writing(converted)
        reporter.advance(task)
    finally:
        for db in (plain, partitioned, control, converted):
            db.drop()
    return {
        "events": config.events,
        "kept": _total(config) - config.events,
        "old_days": config.old_days,
        "retention_days": config.retention_days,
        "results": results,
        "conversion": conversion,
    }


def _total(config: RetentionConfig) -> int:
    return config.events + config.events // 10


def _database(base: BenchDatabase, suffix: str) -> BenchDatabase:
    db = BenchDatabase(base.url.set(database=f"{base.url.database}_retention_{suffix}"))
    db.recreate()
    return db


def _rows(config: RetentionConfig, now: datetime) -> Iterator[list[EventRow]]:
    """Old events spread evenly over ``old_days`` days before the cutoff (a day apart from
    it), then a tenth as many over the last days; in chunks, oldest first."""
    oldest = now - timedelta(days=config.retention_days + 1 + config.old_days)
    old_step = timedelta(days=config.old_days) / config.events
    recent = config.events // 10
    recent_start = now - timedelta(days=config.retention_days - 1)
    recent_step = timedelta(days=config.retention_days - 1) / max(recent, 1)

    def row(n: int, ts: datetime) -> EventRow:
        return (None, None, f"bench-{n % 1000}", "INFO", f"copied block {n}", None, ts, None, None)

    chunk: list[EventRow] = []
    for n in range(config.events + recent):
        ts = (
            oldest + n * old_step
            if n < config.events
            else recent_start + (n - config.events) * recent_step
        )
        chunk.append(row(n, ts))
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _build(
    db: BenchDatabase,
    *,
    new: bool,
    now: datetime,
    config: RetentionConfig,
    advance: Callable[[int], None],
) -> None:
    """A database at head whose log_events is partitioned (``new``) or plain, loaded."""
    if new:
        migrate.upgrade(db.sa_url)
    else:
        migrate.upgrade(db.sa_url, "0005_event_lookups")
        migrate.upgrade(db.sa_url)  # not new: log_events stays plain
    store = Store(db.sa_url)
    try:
        if new:
            partitions = store.backend.event_partitions()
            assert partitions is not None
            first = now - timedelta(days=config.retention_days + 2 + config.old_days)
            partitions.cover(store.engine, first, now)
    finally:
        store.close()
    # The driver's COPY, a transaction per chunk: loading is not what is measured.
    conn = db.connect()
    try:
        for chunk in _rows(config, now):
            with db.transaction(conn):
                db.bulk_insert(conn, "log_events", EVENT_COLUMNS, chunk)
            advance(len(chunk))
        db.execute(conn, "VACUUM ANALYZE")
        db.execute(conn, "CHECKPOINT")
    finally:
        conn.close()


def _prune(db: BenchDatabase, older_than: timedelta, config: RetentionConfig) -> int:
    store = Store(db.sa_url)
    try:
        return store.housekeeping.prune(older_than, batch_size=config.batch_size).events
    finally:
        store.close()


def _bare_delete(db: BenchDatabase, cutoff: datetime) -> int:
    conn = db.connect()
    try:
        with db.transaction(conn):
            cursor = conn.cursor()
            cursor.execute("DELETE FROM log_events WHERE ts < %s", (cutoff,))
            removed = int(cursor.rowcount)
            cursor.close()
        return removed
    finally:
        conn.close()


def _measure(method: str, db: BenchDatabase, work: Callable[[], int]) -> dict[str, Any]:
    conn = db.connect()
    try:
        size_before = _size(db, conn)
        (wal_before,) = db.execute(conn, "SELECT pg_current_wal_lsn()")[0]
        started = time.perf_counter()
        removed = work()
        seconds = time.perf_counter() - started
        (wal,) = db.execute(
            conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (wal_before,)
        )[0]
        time.sleep(1.5)  # the pruners' sessions have ended; let their statistics land
        db.execute(conn, "SELECT pg_stat_force_next_flush()")
        (dead,) = db.execute(
            conn,
            "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
            f" WHERE relid IN {_TABLES}",
        )[0]
        size_after = _size(db, conn)
    finally:
        conn.close()
    return {
        "method": method,
        "removed": removed,
        "seconds": round(seconds, 3),
        "wal_bytes": int(wal),
        "size_before": size_before,
        "size_after": size_after,
        "dead_rows": int(dead),
    }


def _size(db: BenchDatabase, conn: Any) -> int:
    """Bytes of log_events with its indexes and every partition."""
    (size,) = db.execute(
        conn,
        "SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM pg_class"
        f" WHERE oid IN {_TABLES}",
    )[0]
    return int(size)


#: log_events and, when it is partitioned, its partitions (a plain table has no tree).
_TABLES = "(SELECT 'log_events'::regclass UNION SELECT relid FROM pg_partition_tree('log_events'))"


def _convert_while_writing(db: BenchDatabase) -> dict[str, Any]:
    """``joblog db partition`` on the plain copy while one writer stores 20-event batches."""
    store = Store(db.sa_url)
    done = threading.Event()
    latencies: list[float] = []
    failures: list[BaseException] = []

    def write() -> None:
        try:
            while not done.is_set():
                row: EventRow = (None, None, "live", "INFO", "live", None, utcnow(), None, None)
                rows = [row] * 20
                started = time.perf_counter()
                store.apply_batch([InsertEvents(rows)], batch_key=uuid.uuid4().hex)
                latencies.append(time.perf_counter() - started)
                time.sleep(0.005)
        except BaseException as error:  # reported in the results
            failures.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(1.0)
        report = store.housekeeping.partition_events()
        time.sleep(1.0)
    finally:
        done.set()
        writer.join(60)
        store.close()
    assert isinstance(report, ConversionReport)
    ordered = sorted(latencies)
    return {
        "seconds": report.seconds,
        "swap_ms": round(report.swap_seconds * 1000, 1),
        "lock_retries": report.lock_retries,
        "writer_batches": len(latencies),
        "writer_p50_ms": round(ordered[len(ordered) // 2] * 1000, 1) if ordered else None,
        "writer_max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
        "writer_errors": [repr(error) for error in failures],
    }


# -- RESULTS.md --------------------------------------------------------------------------------


def _bytes(value: int) -> str:
    if value >= 1 << 30:
        return f"{value / (1 << 30):.2f} GiB"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value / 1024:.0f} KiB"


def _ratio(value: float, base: float) -> str:
    return "-" if not base else f"{value / base:.3g}x"


def load_note(data: dict[str, Any]) -> str:
    load = (data.get("machine") or {}).get("load_average")
    if not load:
        return ""
    return (
        f"Load average when it started: {load[0]:.2f} (the machine was shared with other work"
        " while it ran)."
    )


def render_retention(data: dict[str, Any]) -> list[str]:
    """The retention section of RESULTS.md."""
    lines = ["## Retention: partition drop vs DELETE (PostgreSQL)", ""]
    if data.get("skipped"):
        return [*lines, f"Not run: {data['skipped']}.", ""]
    lines += [
        f"Run: {data.get('date', '?')}. {data['events']:,} events older than the retention"
        f" ({data['old_days']} days of them) and {data['kept']:,} newer ones that stay;"
        f" `prune --older-than {data['retention_days']}d`. WAL: `pg_current_wal_lsn()` before"
        " and after (the server's, so other activity on it counts too); size: log_events with"
        " indexes and partitions; dead rows: left for VACUUM. Ratios against the joblog DELETE"
        " and the bare one-statement DELETE (the control) of the same run."
        f" {load_note(data)}",
        "",
        "| method | events removed | time | WAL written | size before → after | dead rows left"
        " | time vs joblog DELETE | WAL vs joblog DELETE | time vs bare DELETE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    results = data["results"]
    joblog_delete = results[0]
    bare = results[1]
    for result in results:
        lines.append(
            f"| {result['method']} | {result['removed']:,} | {result['seconds']:.2f} s"
            f" | {_bytes(result['wal_bytes'])} | {_bytes(result['size_before'])} →"
            f" {_bytes(result['size_after'])} | {result['dead_rows']:,}"
            f" | {_ratio(result['seconds'], joblog_delete['seconds'])}"
            f" | {_ratio(result['wal_bytes'], joblog_delete['wal_bytes'])}"
            f" | {_ratio(result['seconds'], bare['seconds'])} |"
        )
    conversion = data.get("conversion")
    if conversion:
        total = data["events"] + data["kept"]
        lines += [
            "",
            f"`joblog db partition` on a copy of the plain table (the same {total:,} events)"
            f" while a writer stored 20-event batches: {conversion['seconds']:.1f} s in all;"
            f" log_events locked for the swap {conversion['swap_ms']:.0f} ms; the writer's"
            f" batches p50 {conversion['writer_p50_ms']} ms, slowest"
            f" {conversion['writer_max_ms']} ms ({conversion['writer_batches']:,} batches,"
            f" errors: {len(conversion['writer_errors'])}); locks asked again:"
            f" {conversion['lock_retries']}.",
        ]
    return [*lines, ""]
