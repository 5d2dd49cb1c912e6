"""The seed's ways of finding a job's internal ID from the GUI's external ID, per backend.

Each strategy is hand-written SQL for one backend plus the schema objects it needs (and
whose size and insert cost it adds). The message-prefix strategy needs a 50-character
prefix index; each backend spells that differently, and each query is written so that
the backend can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from joblog.bench.backends import BenchDatabase, Connection
from joblog.bench.workload import started_message

__all__ = [
    "CORRELATION_DDL",
    "PREFIX_CHARS",
    "PREFIX_INDEX_DDL",
    "STRATEGIES",
    "Strategy",
    "explain",
    "index_sizes",
]

PREFIX_CHARS = 50


@dataclass(frozen=True)
class Strategy:
    key: str
    title: str
    query_type: str  # as in the seed's comparison table
    #: backend -> SQL with one parameter (or two for the prefix strategy)
    sql: dict[str, str]
    #: indexes (backend -> [(table, index name)]) whose size this strategy adds
    indexes: dict[str, list[tuple[str, str]]]
    #: the key -> query parameters
    params: Callable[[str], tuple[object, ...]]
    #: False: no index, a full scan (measured on fewer keys, time-boxed)
    indexed: bool = True


def _ext(key: str) -> tuple[object, ...]:
    return (key,)


def _prefix(key: str) -> tuple[object, ...]:
    message = started_message(key)
    return (message[:PREFIX_CHARS], message + "%")


def _prefix_mariadb(key: str) -> tuple[object, ...]:
    return (started_message(key) + "%",)


_EVENTS_IDX = [("log_events", "idx_log_events_external_job_id")]
_JOBS_IDX = [("job_tracking", "idx_job_tracking_external_job_id")]
_PREFIX_IDX = [("log_events", "bench_idx_message_prefix")]
_CORR_IDX = [
    ("job_id_correlations", "bench_corr_pkey"),
    ("job_id_correlations", "bench_corr_external_job_id"),
    ("job_id_correlations", "bench_corr_internal_job_id"),
    ("job_id_correlations", "bench_corr_job_type"),
]


def _all(sql: str) -> dict[str, str]:
    return {"sqlite": sql.replace("%s", "?"), "postgresql": sql, "mariadb": sql}


def _per_backend(items: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    return {"sqlite": items, "postgresql": items, "mariadb": items}


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "events_column",
        "External Job ID column (log_events)",
        "`WHERE external_job_id = ?` on log_events",
        _all("SELECT job_id FROM log_events WHERE external_job_id = %s LIMIT 1"),
        _per_backend(_EVENTS_IDX),
        _ext,
    ),
    Strategy(
        "jobs_column",
        "External ID on job_tracking (joblog tier 2)",
        "`WHERE external_job_id = ?` on job_tracking, newest",
        _all(
            "SELECT id FROM job_tracking WHERE external_job_id = %s "
            "ORDER BY created_at DESC, id DESC LIMIT 1"
        ),
        _per_backend(_JOBS_IDX),
        _ext,
    ),
    Strategy(
        "message_prefix",
        "Message pattern (message(50) prefix index)",
        "`WHERE message LIKE 'Failover job started: <id>%'`",
        {
            "sqlite": "SELECT job_id FROM log_events WHERE substr(message, 1, 50) = ? "
            "AND message LIKE ? LIMIT 1",
            "postgresql": "SELECT job_id FROM log_events WHERE left(message, 50) = %s "
            "AND message LIKE %s LIMIT 1",
            "mariadb": "SELECT job_id FROM log_events WHERE message LIKE %s LIMIT 1",
        },
        _per_backend(_PREFIX_IDX),
        _prefix,
    ),
    Strategy(
        "correlation_table",
        "Correlation table (job_id_correlations)",
        "`WHERE external_job_id = ?` on job_id_correlations",
        _all("SELECT internal_job_id FROM job_id_correlations WHERE external_job_id = %s"),
        _per_backend(_CORR_IDX),
        _ext,
    ),
    Strategy(
        "json_attrs",
        "JSON attrs search (no index)",
        "`WHERE JSON_EXTRACT(attrs, '$.external_job_id') = ?`",
        {
            "sqlite": "SELECT job_id FROM log_events "
            "WHERE json_extract(attrs, '$.external_job_id') = ? LIMIT 1",
            "postgresql": "SELECT job_id FROM log_events "
            "WHERE attrs->>'external_job_id' = %s LIMIT 1",
            "mariadb": "SELECT job_id FROM log_events "
            "WHERE JSON_VALUE(attrs, '$.external_job_id') = %s LIMIT 1",
        },
        {"sqlite": [], "postgresql": [], "mariadb": []},
        _ext,
        indexed=False,
    ),
)


def params_for(strategy: Strategy, backend: str, key: str) -> tuple[object, ...]:
    if strategy.key == "message_prefix" and backend == "mariadb":
        return _prefix_mariadb(key)
    return strategy.params(key)


#: The seed's prefix index, in each backend's spelling.
PREFIX_INDEX_DDL = {
    "sqlite": "CREATE INDEX bench_idx_message_prefix ON log_events (substr(message, 1, 50))",
    "postgresql": "CREATE INDEX bench_idx_message_prefix "
    "ON log_events (left(message, 50) text_pattern_ops)",
    "mariadb": "ALTER TABLE log_events ADD INDEX bench_idx_message_prefix (message(50))",
}

#: The seed's correlation table (its redundant second index on external_job_id left out:
#: the UNIQUE constraint already is one).
CORRELATION_DDL = {
    "sqlite": [
        "CREATE TABLE job_id_correlations (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "external_job_id VARCHAR(255) NOT NULL, internal_job_id VARCHAR(64) NOT NULL, "
        "job_type VARCHAR(50) NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
        "CREATE UNIQUE INDEX bench_corr_external_job_id ON job_id_correlations (external_job_id)",
    ],
    "postgresql": [
        "CREATE TABLE job_id_correlations (id SERIAL CONSTRAINT bench_corr_pkey PRIMARY KEY, "
        "external_job_id VARCHAR(255) NOT NULL, internal_job_id VARCHAR(64) NOT NULL, "
        "job_type VARCHAR(50) NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)",
        "CREATE UNIQUE INDEX bench_corr_external_job_id ON job_id_correlations (external_job_id)",
    ],
    "mariadb": [
        "CREATE TABLE job_id_correlations (id INT PRIMARY KEY AUTO_INCREMENT, "
        "external_job_id VARCHAR(255) NOT NULL, internal_job_id VARCHAR(64) NOT NULL, "
        "job_type VARCHAR(50) NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
        "UNIQUE KEY bench_corr_external_job_id (external_job_id))",
    ],
}
CORRELATION_INDEX_DDL = [
    "CREATE INDEX bench_corr_internal_job_id ON job_id_correlations (internal_job_id)",
    "CREATE INDEX bench_corr_job_type ON job_id_correlations (job_type)",
]


def create_strategy_objects(db: BenchDatabase, conn: Connection) -> None:
    """The prefix index and the correlation table, on top of joblog's schema."""
    db.execute(conn, PREFIX_INDEX_DDL[db.backend])
    for statement in CORRELATION_DDL[db.backend] + CORRELATION_INDEX_DDL:
        db.execute(conn, statement)


def index_sizes(db: BenchDatabase, conn: Connection) -> dict[tuple[str, str], int]:
    """Bytes per (table, index); the primary key of InnoDB is the table itself (omitted)."""
    sizes: dict[tuple[str, str], int] = {}
    if db.backend == "postgresql":
        # An index of a partitioned table (log_events) has no storage of its own: its
        # size is that of its partitions' indexes.
        rows = db.execute(
            conn,
            "SELECT t.relname, i.relname, CASE WHEN i.relkind = 'I' THEN (SELECT"
            " coalesce(sum(pg_relation_size(p.relid)), 0) FROM pg_partition_tree(i.oid) p"
            " WHERE p.isleaf) ELSE pg_relation_size(i.oid) END FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'",
        )
    elif db.backend == "mariadb":
        rows = db.execute(
            conn,
            "SELECT table_name, index_name, stat_value * @@innodb_page_size "
            "FROM mysql.innodb_index_stats WHERE database_name = DATABASE() "
            "AND stat_name = 'size'",
        )
    else:
        rows = db.execute(
            conn,
            "SELECT m.tbl_name, s.name, SUM(s.pgsize) FROM dbstat s "
            "JOIN sqlite_master m ON m.name = s.name WHERE m.type = 'index' GROUP BY s.name",
        )
    for table, index, size in rows:
        sizes[(str(table), str(index))] = int(size)
    return sizes


def strategy_index_bytes(
    strategy: Strategy, backend: str, sizes: dict[tuple[str, str], int]
) -> int | None:
    if not strategy.indexes[backend]:
        return 0
    total = 0
    found = False
    for table, index in strategy.indexes[backend]:
        if (table, index) in sizes:
            total += sizes[(table, index)]
            found = True
        elif backend == "mariadb" and index == "bench_corr_pkey":
            # InnoDB's primary key is the clustered table: count the whole table.
            total += sizes.get((table, "PRIMARY"), 0)
    return total if found else None


def explain(db: BenchDatabase, conn: Connection, sql: str, params: tuple[object, ...]) -> str:
    """The plan the backend uses for ``sql`` (with actual row counts where it tells them)."""
    if db.backend == "postgresql":
        rows = db.execute(
            conn, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql, params
        )
        return "\n".join(str(row[0]) for row in rows)
    if db.backend == "mariadb":
        cursor = conn.cursor()
        try:
            cursor.execute("ANALYZE " + sql, params)
            names = [d[0] for d in cursor.description]
            keep = ("table", "type", "key", "key_len", "rows", "r_rows", "filtered", "Extra")
            lines = []
            for row in cursor.fetchall():
                fields = dict(zip(names, row, strict=True))
                lines.append(" ".join(f"{k}={fields.get(k)}" for k in keep))
            return "\n".join(lines)
        finally:
            cursor.close()
    rows = db.execute(conn, "EXPLAIN QUERY PLAN " + sql, params)
    return "\n".join(str(row[-1]) for row in rows)
