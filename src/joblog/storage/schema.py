"""Every table joblog uses, declared once on one MetaData.

The Alembic revisions under ``joblog/migrations`` build exactly this schema (a test
proves it). The shapes follow the older system the seed plan describes: VARCHAR(64)
job IDs, an ENUM level, JSON attrs (LONGTEXT with a JSON check on MariaDB), and
DATETIME(6) timestamps (naive UTC everywhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.ext.compiler import compiles

from joblog.model import OPEN_JOB_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import DDLCompiler

__all__ = [
    "CHILDREN",
    "EXTERNAL_NEWEST",
    "FAILOVER_JOB_TYPES",
    "FAILOVER_STATUSES",
    "ID_COLLATION",
    "LEVELS",
    "RUNNING_HOLDER",
    "RUNNING_HOLDER_COLUMN",
    "dashboard_sessions",
    "failover_jobs",
    "ingest_batches",
    "job_steps",
    "job_tracking",
    "log_events",
    "metadata",
]

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
FAILOVER_JOB_TYPES = ("live", "test")
FAILOVER_STATUSES = (
    "pending",
    "validating",
    "snapshotting",
    "creating_vm",
    "switching_volume",
    "powering_on",
    "completed",
    "failed",
    "cleanup",
    "reverting",
)

# Constraint names are fixed so that migrations, downgrades and reflection agree.
metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "idx_%(table_name)s_%(column_0_N_name)s",
    }
)


def timestamp() -> sa.types.TypeEngine[Any]:
    """Naive UTC with microseconds: DATETIME(6) on MySQL/MariaDB, TIMESTAMP elsewhere."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON; JSONB on PostgreSQL, LONGTEXT with a json_valid check on MariaDB."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


#: MariaDB's binary collation without PAD SPACE: IDs compare byte for byte, so
#: ``rs-VM-X `` is not ``rs-vm-x`` and no two emoji are equal (as on PostgreSQL/SQLite).
ID_COLLATION = "utf8mb4_nopad_bin"


def id_string(length: int) -> sa.types.TypeEngine[str]:
    """A looked-up ID (external ID, context ID, batch key): exact comparison everywhere.

    Job IDs keep the origin's collation: they are UUIDs (equal in any case by definition),
    and the origin's other tables have foreign keys to ``job_tracking.id`` that would
    have to change with it.
    """
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation=ID_COLLATION), "mysql", "mariadb"
    )


def big_id() -> sa.types.TypeEngine[int]:
    """BIGINT, but INTEGER on SQLite so that the primary key is the rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


job_tracking = sa.Table(
    "job_tracking",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "parent_job_id",
        sa.String(64),
        sa.ForeignKey("job_tracking.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("job_type", sa.String(50), nullable=False, index=True),
    sa.Column("operation", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("external_job_id", id_string(255), nullable=True, index=True),
    sa.Column("context_id", id_string(255), nullable=True, index=True),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("percent_complete", sa.Integer, nullable=False, server_default="0"),
    sa.Column("metadata", json_type(), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("planned_steps", json_type(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    # Started under the "reject" policy: while open, no other such job may hold the ID.
    sa.Column("exclusive_external_id", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", timestamp(), nullable=False, index=True),
    sa.Column("started_at", timestamp(), nullable=True),
    sa.Column("completed_at", timestamp(), nullable=True),
    sa.Column("updated_at", timestamp(), nullable=True),
    sa.Column("heartbeat_at", timestamp(), nullable=True),
)

job_steps = sa.Table(
    "job_steps",
    metadata,
    sa.Column("id", big_id(), primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("job_tracking.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("weight", sa.Float, nullable=False, server_default="1"),
    sa.Column("allow_failure", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("started_at", timestamp(), nullable=True),
    sa.Column("completed_at", timestamp(), nullable=True),
    sa.UniqueConstraint("job_id", "seq"),
)

log_events = sa.Table(
    "log_events",
    metadata,
    sa.Column("id", big_id(), primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("job_tracking.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    sa.Column(
        "step_id",
        big_id(),
        sa.ForeignKey("job_steps.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("level", sa.Enum(*LEVELS, name="log_level"), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("attrs", json_type(), nullable=True),
    sa.Column("ts", timestamp(), nullable=False, index=True),
    # The seed's change: the GUI-constructed ID, indexed for a direct lookup.
    sa.Column("external_job_id", id_string(255), nullable=True, index=True),
    # OpenTelemetry: the span active when the event was logged (lowercase hex), if any.
    sa.Column("trace_id", sa.String(32), nullable=True, index=True),
    sa.Column("span_id", sa.String(16), nullable=True),
    # PostgreSQL: range-partitioned by ts (see below).
    postgresql_partition_by="RANGE (ts)",
    info={"partition_key": "ts"},
)

# A job's newest events, read without walking the primary key: PostgreSQL only, as
# InnoDB's and SQLite's index on job_id already ends in the primary key (revision 0005).
JOB_NEWEST = "idx_log_events_job_id_id"


def _postgresql(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: sa.Dialect,
    compiler: Any = None,
    checkfirst: bool = False,
) -> bool:
    return dialect.name == "postgresql"


sa.Index(JOB_NEWEST, log_events.c.job_id, log_events.c.id).ddl_if(callable_=_postgresql)
# The same for an external ID's newest events (events-only producers, tier log_events):
# PostgreSQL only, for the same reason (revision 0006).
EXTERNAL_NEWEST = "idx_log_events_external_job_id_id"
sa.Index(EXTERNAL_NEWEST, log_events.c.external_job_id, log_events.c.id).ddl_if(
    callable_=_postgresql
)

# On PostgreSQL log_events is partitioned by ts, a partition per day by default (revision
# 0006 builds it so in a new database, ``joblog db partition`` converts an older one; see
# joblog.storage.dialects.pg_partitions). PostgreSQL wants the partition key in every
# unique constraint, so there the primary key is (id, ts); id alone still comes from one
# sequence. The default partition and the first partitions come with the table.


@compiles(sa.PrimaryKeyConstraint, "postgresql")
def _primary_key_with_partition_key(
    constraint: sa.PrimaryKeyConstraint, compiler: DDLCompiler, **kw: Any
) -> str:
    table = constraint.table
    partition_key = table.info.get("partition_key") if isinstance(table, sa.Table) else None
    if partition_key is None:
        return compiler.visit_primary_key_constraint(constraint, **kw)
    names = [column.name for column in constraint.columns]
    names += [partition_key] if partition_key not in names else []
    quoted = ", ".join(compiler.preparer.quote(name) for name in names)
    return f"CONSTRAINT {compiler.preparer.format_constraint(constraint)} PRIMARY KEY ({quoted})"


@sa.event.listens_for(log_events, "after_create")
def _postgresql_partitions(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    if connection.dialect.name != "postgresql":
        return
    from joblog._ids import utcnow
    from joblog.storage.dialects.pg_partitions import fresh_partitions

    for statement in fresh_partitions(utcnow()):
        connection.exec_driver_sql(statement)


failover_jobs = sa.Table(
    "failover_jobs",
    metadata,
    sa.Column("id", big_id(), primary_key=True, autoincrement=True),
    sa.Column("job_id", id_string(255), nullable=False, unique=True),
    sa.Column("vm_id", sa.String(64), nullable=True),
    sa.Column("job_type", sa.Enum(*FAILOVER_JOB_TYPES, name="failover_job_type"), nullable=False),
    sa.Column(
        "status",
        sa.Enum(*FAILOVER_STATUSES, name="failover_status"),
        nullable=False,
        server_default="pending",
    ),
    sa.Column("source_vm_name", sa.String(255), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("created_at", timestamp(), nullable=False),
    sa.Column("updated_at", timestamp(), nullable=True),
    sa.Column("completed_at", timestamp(), nullable=True),
)

# One row per stored batch: makes a retried batch (writer or HTTP) land exactly once.
ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("batch_key", id_string(128), primary_key=True),
    sa.Column("created_at", timestamp(), nullable=False, index=True),
)

# The dashboard's sign-ins, one row per session, so that signing out ends a session in
# every server process at once. The cookie holds a random secret; the row only its
# SHA-256 (a copy of this table opens no session), and which configured token signed in
# (by fingerprint: the role is the token's, looked up at each request).
dashboard_sessions = sa.Table(
    "dashboard_sessions",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("token_fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", timestamp(), nullable=False),
    sa.Column("expires_at", timestamp(), nullable=False, index=True),
)

# "reject" enforced by the database: one open exclusive holder per external ID, so of
# any number of concurrent starts exactly one inserts its row. PostgreSQL and SQLite
# have partial indexes; MariaDB has none, so there the same rule is a unique index on a
# VIRTUAL column that is the external ID while the job holds it and NULL otherwise
# (NULLs never collide). Revision 0004 builds both forms.
RUNNING_HOLDER = "uq_job_tracking_running_external_id"
_holds = sa.and_(
    job_tracking.c.exclusive_external_id,
    job_tracking.c.status.in_(OPEN_JOB_STATUSES),
)


def _not_mysql(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: sa.Dialect,
    compiler: Any = None,
    checkfirst: bool = False,
) -> bool:
    return dialect.name != "mysql"


sa.Index(
    RUNNING_HOLDER,
    job_tracking.c.external_job_id,
    unique=True,
    postgresql_where=_holds,
    sqlite_where=_holds,
).ddl_if(callable_=_not_mysql)
RUNNING_HOLDER_COLUMN = "running_external_id"

# A job's children, in order, from an index that holds only child jobs (revision 0006).
# Top-level jobs' NULL parents are most rows: SQLite's ANALYZE counts them as one value
# held by all, and its planner then walked created_at for every children lookup. Partial
# on PostgreSQL and SQLite; MariaDB has no partial index and its plain one serves.
CHILDREN = "idx_job_tracking_children"
sa.Index(
    CHILDREN,
    job_tracking.c.parent_job_id,
    job_tracking.c.created_at,
    postgresql_where=job_tracking.c.parent_job_id.is_not(None),
    sqlite_where=job_tracking.c.parent_job_id.is_not(None),
).ddl_if(callable_=_not_mysql)


@sa.event.listens_for(job_tracking, "after_create")
def _mysql_running_holder(target: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    if connection.dialect.name != "mysql":
        return
    connection.exec_driver_sql(
        f"ALTER TABLE job_tracking ADD COLUMN {RUNNING_HOLDER_COLUMN}"
        f" VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {ID_COLLATION}"
        " AS (IF(exclusive_external_id AND status IN ('pending', 'running'),"
        " external_job_id, NULL)) VIRTUAL"
    )
    connection.exec_driver_sql(
        f"CREATE UNIQUE INDEX {RUNNING_HOLDER} ON job_tracking ({RUNNING_HOLDER_COLUMN})"
    )
