"""``joblog bench scale`` (resolve part): an old long job under millions of newer events.

One running job logs ``old_events`` events (20k by default) first; then ``newer_events``
events of ordinary jobs (the workload of :mod:`joblog.bench.workload`) follow. A planner
that reads a job's newest events by walking the primary key backwards and filtering
``job_id`` reads all the newer events for it. Measured per backend, after ``ANALYZE``:

* ``resolve()`` of the old job (by its external ID) and of random ordinary jobs;
* a stream poll of the old job: its state row (:meth:`Reader.job_with_state`) and the
  events after its newest one (what an idle-but-woken live view reads);
* the plans (``EXPLAIN``) of the statements behind both, kept in the results.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joblog.bench.backends import BenchDatabase, Connection
from joblog.bench.lookup import load_until
from joblog.bench.progress import Reporter
from joblog.bench.timing import Latency
from joblog.bench.workload import (
    BASE_TIME,
    EVENT_COLUMNS,
    JOB_COLUMNS,
    STEP_COLUMNS,
    STEP_NAMES,
    external_id,
    jobs_for_events,
)
from joblog.resolve import TIERS, Resolver
from joblog.storage import queries
from joblog.storage.store import Store

__all__ = ["OLD_JOB_ID", "OLD_JOB_KEY", "OldJobConfig", "explain", "run_old_job"]

OLD_JOB_ID = "00000000-0000-4000-8000-0000000001d0"
OLD_JOB_KEY = "old-long-job-1"
_STEP_BASE = 10**15  # far from the workload's step IDs


@dataclass
class OldJobConfig:
    old_events: int = 20_000
    newer_events: int = 1_000_000
    samples: int = 2_000


def _old_job_rows() -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    start = BASE_TIME - timedelta(days=1)
    planned = json.dumps([{"name": name, "weight": 1.0} for name in STEP_NAMES])
    job = (
        OLD_JOB_ID,
        "failover",
        "live-failover",
        "running",
        OLD_JOB_KEY,
        "old-vm",
        40,
        json.dumps({"vm_name": "old-vm"}),
        planned,
        False,
        start,
        start,
        None,
        start,
        start,
    )
    steps = []
    for seq, name in enumerate(STEP_NAMES[:3], start=1):
        done = seq < 3
        status = "completed" if done else "running"
        steps.append(
            (
                _STEP_BASE + seq,
                OLD_JOB_ID,
                seq,
                name,
                status,
                1.0,
                False,
                start,
                start if done else None,
            )
        )
    return job, steps


def load_old_job(db: BenchDatabase, conn: Connection, events: int) -> None:
    """The old job, its steps and its ``events`` events, stored before anything else."""
    job, steps = _old_job_rows()
    start = BASE_TIME - timedelta(days=1)
    rows = [
        (
            OLD_JOB_ID,
            _STEP_BASE + 3,
            OLD_JOB_KEY,
            "INFO",
            f"copying block range {n}",
            json.dumps({"logger": "failover", "n": n}),
            start + timedelta(milliseconds=n),
        )
        for n in range(events)
    ]
    with db.transaction(conn, fast_load=True):
        db.bulk_insert(conn, "job_tracking", JOB_COLUMNS, [job])
        db.bulk_insert(conn, "job_steps", STEP_COLUMNS, steps)
        for first in range(0, len(rows), 10_000):
            db.bulk_insert(conn, "log_events", EVENT_COLUMNS, rows[first : first + 10_000])


def prepare(db: BenchDatabase, config: OldJobConfig, reporter: Reporter) -> int:
    """A fresh database: the old job first, then ``newer_events``; its ordinary jobs."""
    db.recreate()
    Store(db.sa_url).close()  # through migrations, as a served database would be
    conn = db.connect()
    try:
        load_old_job(db, conn, config.old_events)
        jobs = jobs_for_events(config.newer_events)
        load_until(db, conn, 0, jobs, reporter, correlations=False)
        db.analyze(conn, ("log_events", "job_tracking", "job_steps"))
    finally:
        conn.close()
    return jobs


def _timed(call: Any, repeats: int) -> Latency:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return Latency.of(samples, repeats)


def explain(store: Store, statement: Any, params: dict[str, Any]) -> list[str]:
    """The backend's plan of ``statement`` (EXPLAIN QUERY PLAN / EXPLAIN / EXPLAIN)."""
    dialect = store.reads.engine.dialect
    compiled = statement.compile(dialect=dialect)
    merged = compiled.construct_params(params)
    prefix = {
        "sqlite": "EXPLAIN QUERY PLAN ",
        "postgresql": "EXPLAIN (COSTS OFF) ",
        "mysql": "EXPLAIN ",
    }[dialect.name]
    args: Any = merged
    if compiled.positiontup is not None:
        args = tuple(merged[name] for name in compiled.positiontup)
    with store.reads.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + str(compiled), args).fetchall()
    if dialect.name == "sqlite":
        return [str(row[-1]) for row in rows]
    if dialect.name == "postgresql":
        return [str(row[0]) for row in rows]
    return [
        " ".join(f"{key}={value}" for key, value in row._mapping.items() if value is not None)
        for row in rows
    ]


def _plans(store: Store, resolver: Resolver) -> dict[str, list[str]]:
    locate = resolver._statement(TIERS, True)
    by_job = {"job_id": OLD_JOB_ID}
    return {
        "locate (resolution + job state)": explain(store, locate, {"any_id": OLD_JOB_KEY}),
        "recent events": explain(store, queries.RECENT_EVENTS, {**by_job, "limit": 20}),
        "children": explain(store, queries.CHILDREN_OF, by_job),
        "job with state": explain(store, queries.JOB_WITH_STATE, by_job),
        "events after (stream)": explain(
            store,
            queries.event_list(
                job_id=OLD_JOB_ID,
                external_job_id=None,
                filters=queries.EventFilter(),
                after_id=1,
                limit=500,
            ),
            {},
        ),
    }


def measure(db: BenchDatabase, jobs: int, config: OldJobConfig) -> dict[str, Any]:
    store = Store(db.sa_url)
    try:
        resolver = Resolver(store)
        rng = random.Random(3)
        ordinary = [external_id(rng.randrange(jobs)) for _ in range(config.samples)]
        newest = store.reads.recent_events(job_id=OLD_JOB_ID, limit=1)[-1].id
        for key in ordinary[:200]:
            resolver.resolve(key)
        old = _timed(lambda: resolver.resolve(OLD_JOB_KEY), config.samples)
        keys = iter(ordinary)
        others = _timed(lambda: resolver.resolve(next(keys)), config.samples)

        def stream_poll() -> None:
            store.reads.job_with_state(OLD_JOB_ID)
            store.reads.list_events(job_id=OLD_JOB_ID, after_id=newest, limit=500)

        poll = _timed(stream_poll, config.samples)
        return {
            "backend": db.backend,
            "old_events": config.old_events,
            "newer_events": config.newer_events,
            "resolve_old": old.as_dict(),
            "resolve_others": others.as_dict(),
            "stream_poll_old": poll.as_dict(),
            "plans": _plans(store, resolver),
        }
    finally:
        store.close()


def run_old_job(
    dbs: list[BenchDatabase], config: OldJobConfig, reporter: Reporter, *, keep: bool = False
) -> list[dict[str, Any]]:
    results = []
    for db in dbs:
        jobs = prepare(db, config, reporter)
        try:
            results.append(measure(db, jobs, config))
        finally:
            if not keep:
                db.drop()
    return results
