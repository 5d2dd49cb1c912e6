"""The older system's database, built with raw DDL per dialect, and realistic rows in it.

This is what joblog must adopt: the four tables as the Go service created them, before
the seed's change (no ``log_events.external_job_id``), and no ``alembic_version``. On
MariaDB the log_events indexes carry the names the seed plan shows (``job_id``,
``step_id``), because adoption must not depend on index names; ``seed_names=True``
gives every backend such names (see ``SEED_NAMES``). Foreign keys and unique
constraints are named as 0001_base names them, on SQLite too: SQLite cannot rename a
constraint without rebuilding its table, which adoption does not do (rows stay put).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

OLD_COLUMNS: dict[str, tuple[str, ...]] = {
    "job_tracking": (
        "id",
        "parent_job_id",
        "job_type",
        "operation",
        "status",
        "context_id",
        "owner",
        "percent_complete",
        "metadata",
        "error_message",
        "created_at",
        "started_at",
        "completed_at",
        "updated_at",
    ),
    "job_steps": (
        "id",
        "job_id",
        "seq",
        "name",
        "status",
        "error_message",
        "started_at",
        "completed_at",
    ),
    "log_events": ("id", "job_id", "step_id", "level", "message", "attrs", "ts"),
    "failover_jobs": (
        "id",
        "job_id",
        "vm_id",
        "job_type",
        "status",
        "source_vm_name",
        "error_message",
        "created_at",
        "updated_at",
        "completed_at",
    ),
}

FAILOVER_STATUSES = (
    "'pending','validating','snapshotting','creating_vm','switching_volume',"
    "'powering_on','completed','failed','cleanup','reverting'"
)

MARIADB_DDL = [
    """CREATE TABLE job_tracking (
        id VARCHAR(64) NOT NULL,
        parent_job_id VARCHAR(64) NULL,
        job_type VARCHAR(50) NOT NULL,
        operation VARCHAR(100) NOT NULL,
        status VARCHAR(20) NOT NULL,
        context_id VARCHAR(255) NULL,
        owner VARCHAR(255) NULL,
        percent_complete INT NOT NULL DEFAULT 0,
        metadata LONGTEXT NULL CHECK (json_valid(metadata)),
        error_message TEXT NULL,
        created_at DATETIME(6) NOT NULL,
        started_at DATETIME(6) NULL,
        completed_at DATETIME(6) NULL,
        updated_at DATETIME(6) NULL,
        PRIMARY KEY (id),
        KEY idx_job_tracking_parent_job_id (parent_job_id),
        KEY idx_job_tracking_job_type (job_type),
        KEY idx_job_tracking_status (status),
        KEY idx_job_tracking_context_id (context_id),
        KEY idx_job_tracking_created_at (created_at),
        CONSTRAINT fk_job_tracking_parent_job_id FOREIGN KEY (parent_job_id)
            REFERENCES job_tracking (id) ON DELETE SET NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE job_steps (
        id BIGINT NOT NULL AUTO_INCREMENT,
        job_id VARCHAR(64) NOT NULL,
        seq INT NOT NULL,
        name VARCHAR(255) NOT NULL,
        status VARCHAR(20) NOT NULL,
        error_message TEXT NULL,
        started_at DATETIME(6) NULL,
        completed_at DATETIME(6) NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_job_steps_job_id_seq (job_id, seq),
        CONSTRAINT fk_job_steps_job_id FOREIGN KEY (job_id)
            REFERENCES job_tracking (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE log_events (
        id BIGINT NOT NULL AUTO_INCREMENT,
        job_id VARCHAR(64) NULL,
        step_id BIGINT NULL,
        level ENUM('DEBUG','INFO','WARN','ERROR') NOT NULL,
        message TEXT NOT NULL,
        attrs LONGTEXT NULL CHECK (json_valid(attrs)),
        ts DATETIME(6) NOT NULL,
        PRIMARY KEY (id),
        KEY job_id (job_id),
        KEY step_id (step_id),
        CONSTRAINT fk_log_events_job_id FOREIGN KEY (job_id)
            REFERENCES job_tracking (id) ON DELETE CASCADE,
        CONSTRAINT fk_log_events_step_id FOREIGN KEY (step_id)
            REFERENCES job_steps (id) ON DELETE SET NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE failover_jobs (
        id BIGINT NOT NULL AUTO_INCREMENT,
        job_id VARCHAR(255) NOT NULL,
        vm_id VARCHAR(64) NULL,
        job_type ENUM('live','test') NOT NULL,
        status ENUM({FAILOVER_STATUSES}) NOT NULL DEFAULT 'pending',
        source_vm_name VARCHAR(255) NULL,
        error_message TEXT NULL,
        created_at DATETIME(6) NOT NULL,
        updated_at DATETIME(6) NULL,
        completed_at DATETIME(6) NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_failover_jobs_job_id (job_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
]

POSTGRESQL_DDL = [
    "CREATE TYPE log_level AS ENUM ('DEBUG','INFO','WARN','ERROR')",
    "CREATE TYPE failover_job_type AS ENUM ('live','test')",
    f"CREATE TYPE failover_status AS ENUM ({FAILOVER_STATUSES})",
    """CREATE TABLE job_tracking (
        id VARCHAR(64) NOT NULL CONSTRAINT pk_job_tracking PRIMARY KEY,
        parent_job_id VARCHAR(64) NULL CONSTRAINT fk_job_tracking_parent_job_id
            REFERENCES job_tracking (id) ON DELETE SET NULL,
        job_type VARCHAR(50) NOT NULL,
        operation VARCHAR(100) NOT NULL,
        status VARCHAR(20) NOT NULL,
        context_id VARCHAR(255) NULL,
        owner VARCHAR(255) NULL,
        percent_complete INTEGER NOT NULL DEFAULT 0,
        metadata JSONB NULL,
        error_message TEXT NULL,
        created_at TIMESTAMP NOT NULL,
        started_at TIMESTAMP NULL,
        completed_at TIMESTAMP NULL,
        updated_at TIMESTAMP NULL
    )""",
    "CREATE INDEX idx_job_tracking_parent_job_id ON job_tracking (parent_job_id)",
    "CREATE INDEX idx_job_tracking_job_type ON job_tracking (job_type)",
    "CREATE INDEX idx_job_tracking_status ON job_tracking (status)",
    "CREATE INDEX idx_job_tracking_context_id ON job_tracking (context_id)",
    "CREATE INDEX idx_job_tracking_created_at ON job_tracking (created_at)",
    """CREATE TABLE job_steps (
        id BIGSERIAL CONSTRAINT pk_job_steps PRIMARY KEY,
        job_id VARCHAR(64) NOT NULL CONSTRAINT fk_job_steps_job_id
            REFERENCES job_tracking (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name VARCHAR(255) NOT NULL,
        status VARCHAR(20) NOT NULL,
        error_message TEXT NULL,
        started_at TIMESTAMP NULL,
        completed_at TIMESTAMP NULL,
        CONSTRAINT uq_job_steps_job_id_seq UNIQUE (job_id, seq)
    )""",
    """CREATE TABLE log_events (
        id BIGSERIAL CONSTRAINT pk_log_events PRIMARY KEY,
        job_id VARCHAR(64) NULL CONSTRAINT fk_log_events_job_id
            REFERENCES job_tracking (id) ON DELETE CASCADE,
        step_id BIGINT NULL CONSTRAINT fk_log_events_step_id
            REFERENCES job_steps (id) ON DELETE SET NULL,
        level log_level NOT NULL,
        message TEXT NOT NULL,
        attrs JSONB NULL,
        ts TIMESTAMP NOT NULL
    )""",
    "CREATE INDEX idx_log_events_job_id ON log_events (job_id)",
    "CREATE INDEX idx_log_events_step_id ON log_events (step_id)",
    """CREATE TABLE failover_jobs (
        id BIGSERIAL CONSTRAINT pk_failover_jobs PRIMARY KEY,
        job_id VARCHAR(255) NOT NULL CONSTRAINT uq_failover_jobs_job_id UNIQUE,
        vm_id VARCHAR(64) NULL,
        job_type failover_job_type NOT NULL,
        status failover_status NOT NULL DEFAULT 'pending',
        source_vm_name VARCHAR(255) NULL,
        error_message TEXT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NULL,
        completed_at TIMESTAMP NULL
    )""",
]

SQLITE_DDL = [
    """CREATE TABLE job_tracking (
        id VARCHAR(64) NOT NULL PRIMARY KEY,
        parent_job_id VARCHAR(64) NULL,
        job_type VARCHAR(50) NOT NULL,
        operation VARCHAR(100) NOT NULL,
        status VARCHAR(20) NOT NULL,
        context_id VARCHAR(255) NULL,
        owner VARCHAR(255) NULL,
        percent_complete INTEGER NOT NULL DEFAULT 0,
        metadata JSON NULL,
        error_message TEXT NULL,
        created_at DATETIME NOT NULL,
        started_at DATETIME NULL,
        completed_at DATETIME NULL,
        updated_at DATETIME NULL,
        CONSTRAINT fk_job_tracking_parent_job_id FOREIGN KEY (parent_job_id)
            REFERENCES job_tracking (id) ON DELETE SET NULL
    )""",
    "CREATE INDEX idx_job_tracking_parent_job_id ON job_tracking (parent_job_id)",
    "CREATE INDEX idx_job_tracking_job_type ON job_tracking (job_type)",
    "CREATE INDEX idx_job_tracking_status ON job_tracking (status)",
    "CREATE INDEX idx_job_tracking_context_id ON job_tracking (context_id)",
    "CREATE INDEX idx_job_tracking_created_at ON job_tracking (created_at)",
    """CREATE TABLE job_steps (
        id INTEGER NOT NULL PRIMARY KEY,
        job_id VARCHAR(64) NOT NULL,
        seq INTEGER NOT NULL,
        name VARCHAR(255) NOT NULL,
        status VARCHAR(20) NOT NULL,
        error_message TEXT NULL,
        started_at DATETIME NULL,
        completed_at DATETIME NULL,
        CONSTRAINT uq_job_steps_job_id_seq UNIQUE (job_id, seq),
        CONSTRAINT fk_job_steps_job_id FOREIGN KEY (job_id)
            REFERENCES job_tracking (id) ON DELETE CASCADE
    )""",
    """CREATE TABLE log_events (
        id INTEGER NOT NULL PRIMARY KEY,
        job_id VARCHAR(64) NULL,
        step_id INTEGER NULL,
        level VARCHAR(5) NOT NULL,
        message TEXT NOT NULL,
        attrs JSON NULL,
        ts DATETIME NOT NULL,
        CONSTRAINT fk_log_events_job_id FOREIGN KEY (job_id)
            REFERENCES job_tracking (id) ON DELETE CASCADE,
        CONSTRAINT fk_log_events_step_id FOREIGN KEY (step_id)
            REFERENCES job_steps (id) ON DELETE SET NULL
    )""",
    "CREATE INDEX idx_log_events_job_id ON log_events (job_id)",
    "CREATE INDEX idx_log_events_step_id ON log_events (step_id)",
    """CREATE TABLE failover_jobs (
        id INTEGER NOT NULL PRIMARY KEY,
        job_id VARCHAR(255) NOT NULL,
        vm_id VARCHAR(64) NULL,
        job_type VARCHAR(4) NOT NULL,
        status VARCHAR(16) NOT NULL DEFAULT 'pending',
        source_vm_name VARCHAR(255) NULL,
        error_message TEXT NULL,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NULL,
        completed_at DATETIME NULL,
        CONSTRAINT uq_failover_jobs_job_id UNIQUE (job_id)
    )""",
]

DDL = {"mysql": MARIADB_DDL, "postgresql": POSTGRESQL_DDL, "sqlite": SQLITE_DDL}

# The GUI-constructed IDs the seed plan describes.
GUI_ID_PGTEST2 = "unified-live-failover-pgtest2-1758553933"
GUI_ID_WEB01 = "unified-test-failover-web01-1758554100"
JOB_IDS = [
    "e8f15a6d-c5f4-4d69-af72-194b96a0c7fb",
    "0b6f1c3e-8e0a-4a53-9a0f-5c2d7e1f9a10",
    "5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
]
BASE_TIME = datetime(2025, 9, 22, 14, 32, 13, 123456)
INVALID_JSON = '{"external_job_id": "unified-live-failover-broken'


#: Index and unique-constraint names as a real older database may carry them: the
#: seed plan's ``INDEX job_id (job_id)`` / ``INDEX step_id (step_id)``, MariaDB naming an
#: unnamed UNIQUE KEY after its first column, PostgreSQL's ``<table>_<columns>_key``.
#: SQLite's table-level UNIQUE constraints keep their names: SQLite cannot rename them.
SEED_NAMES: dict[str, dict[str, str]] = {
    "mysql": {
        "KEY uq_job_steps_job_id_seq ": "KEY job_id ",
        "KEY uq_failover_jobs_job_id ": "KEY job_id ",
    },
    "postgresql": {
        "INDEX idx_log_events_job_id ": "INDEX job_id ",
        "INDEX idx_log_events_step_id ": "INDEX step_id ",
        "CONSTRAINT uq_job_steps_job_id_seq ": "CONSTRAINT job_steps_job_id_seq_key ",
        "CONSTRAINT uq_failover_jobs_job_id ": "CONSTRAINT failover_jobs_job_id_key ",
    },
    "sqlite": {
        "INDEX idx_log_events_job_id ": "INDEX job_id ",
        "INDEX idx_log_events_step_id ": "INDEX step_id ",
    },
}


def create_older_system(url: str, *, seed_names: bool = False) -> None:
    """Create the older system's four tables in the empty database at ``url``; with
    ``seed_names``, every backend's indexes carry the names a real one may have."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in DDL[connection.dialect.name]:
                if seed_names:
                    for declared, seed in SEED_NAMES[connection.dialect.name].items():
                        statement = statement.replace(declared, seed)
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _timestamp(connection: sa.Connection, value: datetime | None) -> Any:
    # SQLite stores what the older system wrote: ISO text with microseconds.
    if value is not None and connection.dialect.name == "sqlite":
        return value.isoformat(sep=" ")
    return value


def _json(connection: sa.Connection, value: object) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def insert_realistic_rows(url: str) -> None:
    """Jobs (one a child), steps, 100 log events (some with the GUI ID in attrs, some
    with no job), and failover_jobs rows including non-ASCII names."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            _insert(connection)
    finally:
        engine.dispose()


def _insert(connection: sa.Connection) -> None:
    attrs_value = "CAST(:attrs AS JSONB)" if connection.dialect.name == "postgresql" else ":attrs"
    meta_value = attrs_value.replace("attrs", "metadata")
    ts = _timestamp
    for index, job_id in enumerate(JOB_IDS):
        connection.execute(
            sa.text(
                "INSERT INTO job_tracking (id, parent_job_id, job_type, operation, status,"
                " context_id, owner, percent_complete, metadata, error_message, created_at,"
                " started_at, completed_at, updated_at) VALUES (:id, :parent, :job_type,"
                f" :operation, :status, :context_id, :owner, :pct, {meta_value}, :error,"
                " :created, :started, :completed, :updated)"
            ),
            {
                "id": job_id,
                "parent": JOB_IDS[0] if index == 3 else None,
                "job_type": "failover" if index < 3 else "cleanup",
                "operation": ["live failover", "test failover", "failover", "cleanup"][index],
                "status": ["running", "completed", "failed", "completed"][index],
                "context_id": f"vm-context-{index}" if index != 2 else None,
                "owner": "ops@example.com" if index % 2 == 0 else None,
                "pct": [40, 100, 75, 100][index],
                "metadata": _json(
                    connection,
                    {"vm_name": ["pgtest2", "web01", "db-ÄÖÜ", "pgtest2"][index], "n": index},
                )
                if index != 1
                else None,
                "error": "snapshot failed: quota exceeded — retry later" if index == 2 else None,
                "created": ts(connection, BASE_TIME + timedelta(minutes=index)),
                "started": ts(connection, BASE_TIME + timedelta(minutes=index, seconds=1)),
                "completed": ts(connection, BASE_TIME + timedelta(minutes=index + 5))
                if index in (1, 3)
                else None,
                "updated": ts(connection, BASE_TIME + timedelta(minutes=index, microseconds=7)),
            },
        )
        for seq in (1, 2, 3):
            connection.execute(
                sa.text(
                    "INSERT INTO job_steps (job_id, seq, name, status, error_message,"
                    " started_at, completed_at) VALUES (:job_id, :seq, :name, :status,"
                    " :error, :started, :completed)"
                ),
                {
                    "job_id": job_id,
                    "seq": seq,
                    "name": ["validate", "snapshot", "power on"][seq - 1],
                    "status": "completed" if seq < 3 else "running",
                    "error": None,
                    "started": ts(connection, BASE_TIME + timedelta(seconds=seq * 10)),
                    "completed": ts(connection, BASE_TIME + timedelta(seconds=seq * 10 + 5))
                    if seq < 3
                    else None,
                },
            )
    step_ids = list(connection.execute(sa.text("SELECT id FROM job_steps ORDER BY id")).scalars())
    levels = ("DEBUG", "INFO", "WARN", "ERROR")
    for number in range(100):
        job_id = None if number % 10 == 9 else JOB_IDS[number % 4]
        attrs: object
        if number % 5 == 0:
            gui_id = GUI_ID_PGTEST2 if number % 2 == 0 else GUI_ID_WEB01
            attrs = {"external_job_id": gui_id, "vm_name": "pgtest2", "step": number}
        elif number % 7 == 0:
            attrs = None
        else:
            attrs = {"component": "failover", "attempt": number, "note": "ok ✓"}
        connection.execute(
            sa.text(
                "INSERT INTO log_events (job_id, step_id, level, message, attrs, ts)"
                f" VALUES (:job_id, :step_id, :level, :message, {attrs_value}, :ts)"
            ),
            {
                "job_id": job_id,
                "step_id": step_ids[number % len(step_ids)] if number % 3 == 0 else None,
                "level": levels[number % 4],
                "message": f"event {number}: VM pgtest2 → snapshot ✓ 数据库",
                "attrs": _json(connection, attrs),
                "ts": ts(connection, BASE_TIME + timedelta(seconds=number, microseconds=number)),
            },
        )
    if connection.dialect.name == "sqlite":
        # Old SQLite rows were never checked for valid JSON.
        connection.execute(
            sa.text(
                "INSERT INTO log_events (job_id, level, message, attrs, ts)"
                " VALUES (NULL, 'WARN', 'truncated attrs', :attrs, :ts)"
            ),
            {"attrs": INVALID_JSON, "ts": ts(connection, BASE_TIME)},
        )
    failovers = [
        (GUI_ID_PGTEST2, "vm-101", "live", "completed", "pgtest2", None),
        (GUI_ID_WEB01, "vm-102", "test", "failed", "web01", "VM не найдена"),
        ("unified-test-failover-db-ÄÖÜ-1758554200", None, "test", "snapshotting", "db-ÄÖÜ", None),
        ("unified-live-failover-数据库-1758554300", "vm-104", "live", "pending", "数据库", None),
    ]
    for index, (job_id, vm_id, job_type, status, name, error) in enumerate(failovers):
        connection.execute(
            sa.text(
                "INSERT INTO failover_jobs (job_id, vm_id, job_type, status, source_vm_name,"
                " error_message, created_at, updated_at, completed_at) VALUES (:job_id,"
                " :vm_id, :job_type, :status, :name, :error, :created, :updated, :completed)"
            ),
            {
                "job_id": job_id,
                "vm_id": vm_id,
                "job_type": job_type,
                "status": status,
                "name": name,
                "error": error,
                "created": ts(connection, BASE_TIME + timedelta(hours=index)),
                "updated": ts(connection, BASE_TIME + timedelta(hours=index, seconds=3)),
                "completed": ts(connection, BASE_TIME + timedelta(hours=index, minutes=9))
                if status == "completed"
                else None,
            },
        )


def dump_old_columns(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the four tables, old columns only, ordered by primary key."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: [
                    tuple(row)
                    for row in connection.execute(
                        sa.text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
                    )
                ]
                for table, columns in OLD_COLUMNS.items()
            }
    finally:
        engine.dispose()
