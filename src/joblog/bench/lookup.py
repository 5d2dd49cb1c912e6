"""``joblog bench lookup``: each strategy, the bare driver and joblog, per backend and size.

One database per backend grows through the sizes (10k, 100k, 1M events, ...): after each
load it is analysed, then every strategy, joblog's own lookup and its full ``resolve()``
are timed on the same keys (existing ones plus 10% that no job carries).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from joblog.bench.backends import BenchDatabase, Connection
from joblog.bench.progress import Reporter
from joblog.bench.strategies import (
    STRATEGIES,
    Strategy,
    create_strategy_objects,
    explain,
    index_sizes,
    params_for,
    strategy_index_bytes,
)
from joblog.bench.timing import sample_interleaved, sample_latency
from joblog.bench.workload import (
    EVENTS_PER_CYCLE,
    external_id,
    generate,
    jobs_for_events,
    missing_external_ids,
    started_message,
)
from joblog.exceptions import JobNotFound
from joblog.resolve import Resolver
from joblog.storage.store import Store

__all__ = ["LookupConfig", "run_lookup", "run_lookup_backend"]


@dataclass
class LookupConfig:
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000)
    keys: int = 2000
    missing_fraction: float = 0.10
    scan_budget_s: float = 3.0
    insert_cost_events: int = 100_000
    seed: int = 42
    tables: tuple[str, ...] = field(
        default=("log_events", "job_tracking", "job_steps", "job_id_correlations")
    )


def make_keys(jobs: int, config: LookupConfig) -> list[str]:
    """``config.keys`` random existing external IDs plus 10% missing ones, shuffled."""
    rng = random.Random(config.seed + jobs)
    existing = [external_id(rng.randrange(jobs)) for _ in range(config.keys)]
    missing = missing_external_ids(int(config.keys * config.missing_fraction), config.seed)
    keys = existing + missing
    rng.shuffle(keys)
    return keys


def bare_lookup(db: BenchDatabase, conn: Connection, strategy: Strategy) -> Callable[[str], bool]:
    """The strategy's query through a raw cursor (server-side prepared on PostgreSQL)."""
    sql = strategy.sql[db.backend]
    backend = db.backend
    cursor = conn.cursor()
    if backend == "postgresql":

        def call(key: str) -> bool:
            cursor.execute(sql, params_for(strategy, backend, key), prepare=True)
            return cursor.fetchone() is not None

    else:

        def call(key: str) -> bool:
            cursor.execute(sql, params_for(strategy, backend, key))
            return cursor.fetchone() is not None

    return call


def joblog_lookups(resolver: Resolver) -> tuple[Callable[[str], bool], Callable[[str], bool]]:
    def locate(key: str) -> bool:
        try:
            resolver.locate(key)
        except JobNotFound:
            return False
        return True

    def resolve(key: str) -> bool:
        try:
            resolver.resolve(key)
        except JobNotFound:
            return False
        return True

    return locate, resolve


def load_until(
    db: BenchDatabase,
    conn: Connection,
    first_job: int,
    jobs: int,
    reporter: Reporter,
    *,
    correlations: bool = True,
) -> None:
    task = reporter.task(f"{db.backend}: load {jobs * EVENTS_PER_CYCLE:,} events", jobs)
    for chunk in generate(first_job, jobs):
        db.load_chunk(conn, chunk, correlations=correlations)
        reporter.advance(task, len(chunk.jobs))
    reporter.done(task)


def prefix_candidates(db: BenchDatabase, conn: Connection, keys: Sequence[str]) -> float:
    """Mean rows sharing a key's 50-character message prefix: what the prefix index yields."""
    counts = []
    for key in keys[:10]:
        prefix = started_message(key)[:50]
        if db.backend == "mariadb":
            rows = db.execute(
                conn, "SELECT COUNT(*) FROM log_events WHERE message LIKE %s", (prefix + "%",)
            )
        elif db.backend == "postgresql":
            rows = db.execute(
                conn, "SELECT COUNT(*) FROM log_events WHERE left(message, 50) = %s", (prefix,)
            )
        else:
            rows = db.execute(
                conn, "SELECT COUNT(*) FROM log_events WHERE substr(message, 1, 50) = ?", (prefix,)
            )
        counts.append(int(rows[0][0]))
    return sum(counts) / len(counts)


def measure_size(
    db: BenchDatabase,
    conn: Connection,
    size: int,
    jobs: int,
    config: LookupConfig,
    reporter: Reporter,
) -> dict[str, Any]:
    keys = make_keys(jobs, config)
    existing = external_id(jobs // 2)  # the key whose query plan is shown
    sizes = index_sizes(db, conn)
    total, attributed = db.execute(conn, "SELECT COUNT(*), COUNT(job_id) FROM log_events")[0]
    result: dict[str, Any] = {
        "backend": db.backend,
        "size": size,
        "events": int(total),
        "attributed": int(attributed),
        "jobs": jobs,
        "strategies": {},
    }
    task = reporter.task(f"{db.backend} {size:,}: lookups", len(STRATEGIES) + 2)
    for strategy in STRATEGIES:
        call = bare_lookup(db, conn, strategy)
        budget = None if strategy.indexed else config.scan_budget_s
        warmup = keys if strategy.indexed else keys[:2]
        latency = sample_latency(call, keys, warmup=warmup, budget_s=budget)
        params = params_for(strategy, db.backend, existing)
        result["strategies"][strategy.key] = {
            **latency.as_dict(),
            "index_bytes": strategy_index_bytes(strategy, db.backend, sizes),
            "explain": explain(db, conn, strategy.sql[db.backend], params),
            "sql": strategy.sql[db.backend],
        }
        reporter.advance(task)
    result["prefix_candidates"] = prefix_candidates(db, conn, keys)
    store = Store(db.sa_url, auto_migrate=False)
    try:
        # The bare driver and joblog take turns on each key: their ratio must not depend
        # on the machine's speed drifting between two measurement phases.
        locate, resolve = joblog_lookups(Resolver(store))
        bare = bare_lookup(db, conn, next(s for s in STRATEGIES if s.key == "jobs_column"))
        calls = {"bare": bare, "joblog_locate": locate, "joblog_resolve": resolve}
        measured = sample_interleaved(calls, keys, warmup=keys[:300])
        result["bare_interleaved"] = measured["bare"].as_dict()
        result["joblog_locate"] = measured["joblog_locate"].as_dict()
        result["joblog_resolve"] = measured["joblog_resolve"].as_dict()
        reporter.advance(task, 2)
    finally:
        store.close()
    reporter.done(task)
    return result


def run_lookup_backend(
    db: BenchDatabase, config: LookupConfig, reporter: Reporter
) -> list[dict[str, Any]]:
    """Load ``db`` size after size and measure each; the database is made anew."""
    db.recreate()
    store = Store(db.sa_url, auto_migrate=False)
    store.create_tables()
    store.close()
    conn = db.connect()
    results = []
    try:
        create_strategy_objects(db, conn)
        loaded = 0
        for size in sorted(config.sizes):
            target = jobs_for_events(size)
            started = time.perf_counter()
            load_until(db, conn, loaded, target - loaded, reporter)
            load_s = time.perf_counter() - started
            loaded = target
            db.analyze(conn, config.tables)
            result = measure_size(db, conn, size, loaded, config, reporter)
            result["load_seconds"] = round(load_s, 2)
            results.append(result)
    finally:
        conn.close()
    return results


def run_lookup(
    databases: Sequence[BenchDatabase], config: LookupConfig, reporter: Reporter
) -> dict[str, Any]:
    from joblog.bench.insert_cost import run_insert_cost

    out: dict[str, Any] = {"config": _config_dict(config), "results": [], "insert_cost": {}}
    for db in databases:
        out["results"].extend(run_lookup_backend(db, config, reporter))
        out["insert_cost"][db.backend] = run_insert_cost(db, config.insert_cost_events, reporter)
    return out


def _config_dict(config: LookupConfig) -> dict[str, Any]:
    return {
        "sizes": list(config.sizes),
        "keys": config.keys,
        "missing_fraction": config.missing_fraction,
        "scan_budget_s": config.scan_budget_s,
        "insert_cost_events": config.insert_cost_events,
    }
