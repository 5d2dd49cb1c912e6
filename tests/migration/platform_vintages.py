"""The platform's database in its three real vintages, as its Go service built and
filled it, and a fingerprint of everything adoption must keep.

Written from the facts in issue 10 (the platform's production dump and migrations):
``job_tracking`` / ``job_steps`` / ``log_events`` / ``failover_jobs`` with their ENUMs,
``timestamp`` and ``datetime(6)`` columns, JSON as LONGTEXT with ``CHECK json_valid``,
their index names (``idx_status``, ``uk_job_steps_job_seq``, ``job_id``, ...) and
foreign keys. Vintage a is that; b adds the platform's 2025-09-22 migration
(``context_id``, ``external_job_id``, ``job_category`` and their indexes); c adds the
seed's ``log_events.external_job_id``. Tables the platform keeps beside them
(``vm_replication_contexts``, ``replication_jobs``, ``ossea_configs``, golang-migrate's
``schema_migrations``) stand for the other ~35.

On PostgreSQL the same shapes: VARCHAR with CHECK constraints for the ENUMs, JSONB for
the JSON columns, ``timestamp(0)`` for MariaDB's ``timestamp``, identity columns.
Index names are per schema there, so the unique key on ``failover_jobs.job_id`` has
PostgreSQL's own name.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

VINTAGE_NAMES = ("a", "b", "c")
JOB_TABLES = ("job_tracking", "job_steps", "log_events", "failover_jobs")

JOB_TYPES = (
    "cleanup",
    "failover",
    "migration",
    "cloudstack",
    "volume_daemon",
    "linstor",
    "virtio",
    "ossea",
    "scheduler",
    "discovery",
    "bulk-operations",
    "group-management",
    "conflict-detection",
    "phantom-detection",
    "schedule_management",
    "schedule_control",
)
JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
STEP_STATUSES = ("running", "completed", "failed", "skipped")
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
CATEGORIES = ("system", "failover", "replication", "scheduler", "discovery", "bulk")
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
CONTEXT_STATUSES = ("discovered", "replicating", "ready_for_failover", "failed_over_live")


def _enum(values: tuple[str, ...]) -> str:
    return "enum(" + ",".join(f"'{v}'" for v in values) + ")"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"CHECK ({column} IN (" + ", ".join(f"'{v}'" for v in values) + "))"


MARIADB_A = [
    f"""CREATE TABLE vm_replication_contexts (
        context_id varchar(64) NOT NULL,
        vm_name varchar(255) NOT NULL,
        vmware_vm_id varchar(255) NOT NULL,
        current_status {_enum(CONTEXT_STATUSES)} NOT NULL DEFAULT 'discovered',
        created_at timestamp NOT NULL DEFAULT current_timestamp(),
        updated_at timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
        PRIMARY KEY (context_id),
        UNIQUE KEY unique_vm_context (vmware_vm_id),
        KEY idx_vm_name (vm_name)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    f"""CREATE TABLE job_tracking (
        id varchar(64) NOT NULL DEFAULT uuid(),
        parent_job_id varchar(64) DEFAULT NULL,
        job_type {_enum(JOB_TYPES)} NOT NULL,
        operation varchar(100) NOT NULL,
        status {_enum(JOB_STATUSES)} NOT NULL DEFAULT 'pending',
        cloudstack_job_id varchar(64) DEFAULT NULL,
        metadata longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL
            CHECK (json_valid(metadata)),
        error_message text DEFAULT NULL,
        started_at timestamp NULL DEFAULT NULL,
        completed_at timestamp NULL DEFAULT NULL,
        created_at timestamp NOT NULL DEFAULT current_timestamp(),
        updated_at timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
        percent_complete tinyint(3) unsigned DEFAULT 0,
        canceled_at datetime(6) DEFAULT NULL,
        owner varchar(100) DEFAULT NULL,
        PRIMARY KEY (id),
        KEY idx_parent_job (parent_job_id),
        KEY idx_status (status),
        KEY idx_job_type (job_type),
        KEY idx_cloudstack_job (cloudstack_job_id),
        KEY idx_started_at (started_at),
        KEY idx_completed_at (completed_at),
        CONSTRAINT job_tracking_ibfk_1 FOREIGN KEY (parent_job_id)
            REFERENCES job_tracking (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    f"""CREATE TABLE job_steps (
        id bigint(20) NOT NULL AUTO_INCREMENT,
        job_id varchar(64) NOT NULL,
        name varchar(200) NOT NULL,
        seq int(11) NOT NULL,
        status {_enum(STEP_STATUSES)} NOT NULL DEFAULT 'running',
        started_at datetime(6) NOT NULL DEFAULT current_timestamp(6),
        completed_at datetime(6) DEFAULT NULL,
        error_message longtext DEFAULT NULL,
        metadata longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL
            CHECK (json_valid(metadata)),
        PRIMARY KEY (id),
        UNIQUE KEY uk_job_steps_job_seq (job_id, seq),
        CONSTRAINT fk_job_steps_job FOREIGN KEY (job_id)
            REFERENCES job_tracking (id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    f"""CREATE TABLE log_events (
        id bigint(20) NOT NULL AUTO_INCREMENT,
        job_id varchar(64) DEFAULT NULL,
        step_id bigint(20) DEFAULT NULL,
        level {_enum(LEVELS)} NOT NULL,
        message text NOT NULL,
        attrs longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL
            CHECK (json_valid(attrs)),
        ts datetime(6) NOT NULL DEFAULT current_timestamp(6),
        PRIMARY KEY (id),
        KEY job_id (job_id),
        KEY step_id (step_id),
        CONSTRAINT log_events_ibfk_1 FOREIGN KEY (job_id)
            REFERENCES job_tracking (id) ON DELETE SET NULL,
        CONSTRAINT log_events_ibfk_2 FOREIGN KEY (step_id)
            REFERENCES job_steps (id) ON DELETE SET NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    f"""CREATE TABLE failover_jobs (
        id int(11) NOT NULL AUTO_INCREMENT,
        vm_context_id varchar(64) DEFAULT NULL,
        job_id varchar(255) NOT NULL,
        vm_id varchar(255) NOT NULL,
        replication_job_id varchar(255) DEFAULT NULL,
        job_type enum('live','test') NOT NULL,
        status {_enum(FAILOVER_STATUSES)} NOT NULL DEFAULT 'pending',
        source_vm_name varchar(255) NOT NULL,
        source_vm_spec text DEFAULT NULL,
        destination_vm_id varchar(255) DEFAULT NULL,
        ossea_snapshot_id varchar(191) DEFAULT NULL,
        linstor_snapshot_name varchar(255) DEFAULT NULL,
        linstor_config_id int(11) DEFAULT NULL,
        network_mappings text DEFAULT NULL,
        error_message text DEFAULT NULL,
        created_at timestamp NOT NULL DEFAULT current_timestamp(),
        updated_at timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
        started_at timestamp NULL DEFAULT NULL,
        completed_at timestamp NULL DEFAULT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY job_id (job_id),
        KEY fk_failover_jobs_vm_context (vm_context_id),
        CONSTRAINT fk_failover_jobs_vm_context FOREIGN KEY (vm_context_id)
            REFERENCES vm_replication_contexts (context_id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE replication_jobs (
        id varchar(191) NOT NULL,
        source_vm_id varchar(191) NOT NULL,
        status varchar(191) DEFAULT 'pending',
        progress_percent double DEFAULT 0,
        created_at datetime(3) DEFAULT NULL,
        PRIMARY KEY (id),
        KEY idx_replication_jobs_source_vm_id (source_vm_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE ossea_configs (
        id int(11) NOT NULL AUTO_INCREMENT,
        name varchar(191) NOT NULL,
        api_url varchar(255) NOT NULL,
        is_active tinyint(1) DEFAULT 1,
        PRIMARY KEY (id),
        UNIQUE KEY name (name)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE schema_migrations (
        version bigint(20) NOT NULL,
        dirty tinyint(1) NOT NULL,
        PRIMARY KEY (version)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
]

#: The platform's 2025-09-22 migration (vintage b).
MARIADB_B = [
    f"""ALTER TABLE job_tracking
        ADD COLUMN context_id varchar(64) DEFAULT NULL,
        ADD COLUMN external_job_id varchar(64) DEFAULT NULL,
        ADD COLUMN job_category {_enum(CATEGORIES)} DEFAULT 'system',
        ADD KEY idx_external_job (external_job_id),
        ADD KEY idx_job_tracking_context_id (context_id),
        ADD KEY idx_job_tracking_category (job_category),
        ADD KEY idx_job_tracking_category_status_started (job_category, status, started_at)""",
]

#: The seed's change (vintage c).
MARIADB_C = [
    """ALTER TABLE log_events
        ADD COLUMN external_job_id varchar(255) DEFAULT NULL,
        ADD KEY idx_log_events_external_job_id (external_job_id)""",
]

POSTGRESQL_A = [
    f"""CREATE TABLE vm_replication_contexts (
        context_id varchar(64) NOT NULL PRIMARY KEY,
        vm_name varchar(255) NOT NULL,
        vmware_vm_id varchar(255) NOT NULL CONSTRAINT unique_vm_context UNIQUE,
        current_status varchar(32) NOT NULL DEFAULT 'discovered'
            {_in("current_status", CONTEXT_STATUSES)},
        created_at timestamp(0) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at timestamp(0) NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
    "CREATE INDEX idx_vm_name ON vm_replication_contexts (vm_name)",
    f"""CREATE TABLE job_tracking (
        id varchar(64) NOT NULL DEFAULT gen_random_uuid()::text PRIMARY KEY,
        parent_job_id varchar(64) NULL
            CONSTRAINT job_tracking_ibfk_1 REFERENCES job_tracking (id) ON DELETE CASCADE,
        job_type varchar(32) NOT NULL {_in("job_type", JOB_TYPES)},
        operation varchar(100) NOT NULL,
        status varchar(16) NOT NULL DEFAULT 'pending' {_in("status", JOB_STATUSES)},
        cloudstack_job_id varchar(64) NULL,
        metadata jsonb NULL,
        error_message text NULL,
        started_at timestamp(0) NULL,
        completed_at timestamp(0) NULL,
        created_at timestamp(0) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at timestamp(0) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        percent_complete smallint DEFAULT 0 CHECK (percent_complete BETWEEN 0 AND 255),
        canceled_at timestamp(6) NULL,
        owner varchar(100) NULL
    )""",
    "CREATE INDEX idx_parent_job ON job_tracking (parent_job_id)",
    "CREATE INDEX idx_status ON job_tracking (status)",
    "CREATE INDEX idx_job_type ON job_tracking (job_type)",
    "CREATE INDEX idx_cloudstack_job ON job_tracking (cloudstack_job_id)",
    "CREATE INDEX idx_started_at ON job_tracking (started_at)",
    "CREATE INDEX idx_completed_at ON job_tracking (completed_at)",
    f"""CREATE TABLE job_steps (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        job_id varchar(64) NOT NULL
            CONSTRAINT fk_job_steps_job REFERENCES job_tracking (id) ON DELETE CASCADE,
        name varchar(200) NOT NULL,
        seq integer NOT NULL,
        status varchar(16) NOT NULL DEFAULT 'running' {_in("status", STEP_STATUSES)},
        started_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        completed_at timestamp(6) NULL,
        error_message text NULL,
        metadata jsonb NULL,
        CONSTRAINT uk_job_steps_job_seq UNIQUE (job_id, seq)
    )""",
    f"""CREATE TABLE log_events (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        job_id varchar(64) NULL
            CONSTRAINT log_events_ibfk_1 REFERENCES job_tracking (id) ON DELETE SET NULL,
        step_id bigint NULL
            CONSTRAINT log_events_ibfk_2 REFERENCES job_steps (id) ON DELETE SET NULL,
        level varchar(8) NOT NULL {_in("level", LEVELS)},
        message text NOT NULL,
        attrs jsonb NULL,
        ts timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP
    )""",
    "CREATE INDEX job_id ON log_events (job_id)",
    "CREATE INDEX step_id ON log_events (step_id)",
    f"""CREATE TABLE failover_jobs (
        id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        vm_context_id varchar(64) NULL CONSTRAINT fk_failover_jobs_vm_context
            REFERENCES vm_replication_contexts (context_id) ON DELETE CASCADE,
        job_id varchar(255) NOT NULL UNIQUE,
        vm_id varchar(255) NOT NULL,
        replication_job_id varchar(255) NULL,
        job_type varchar(8) NOT NULL {_in("job_type", ("live", "test"))},
        status varchar(32) NOT NULL DEFAULT 'pending' {_in("status", FAILOVER_STATUSES)},
        source_vm_name varchar(255) NOT NULL,
        source_vm_spec text NULL,
        destination_vm_id varchar(255) NULL,
        ossea_snapshot_id varchar(191) NULL,
        linstor_snapshot_name varchar(255) NULL,
        linstor_config_id integer NULL,
        network_mappings text NULL,
        error_message text NULL,
        created_at timestamp(0) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at timestamp(0) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        started_at timestamp(0) NULL,
        completed_at timestamp(0) NULL
    )""",
    "CREATE INDEX fk_failover_jobs_vm_context ON failover_jobs (vm_context_id)",
    """CREATE TABLE replication_jobs (
        id varchar(191) NOT NULL PRIMARY KEY,
        source_vm_id varchar(191) NOT NULL,
        status varchar(191) DEFAULT 'pending',
        progress_percent double precision DEFAULT 0,
        created_at timestamp(3) NULL
    )""",
    "CREATE INDEX idx_replication_jobs_source_vm_id ON replication_jobs (source_vm_id)",
    """CREATE TABLE ossea_configs (
        id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name varchar(191) NOT NULL CONSTRAINT name UNIQUE,
        api_url varchar(255) NOT NULL,
        is_active boolean DEFAULT true
    )""",
    """CREATE TABLE schema_migrations (
        version bigint NOT NULL PRIMARY KEY,
        dirty boolean NOT NULL
    )""",
]

POSTGRESQL_B = [
    f"""ALTER TABLE job_tracking
        ADD COLUMN context_id varchar(64) NULL,
        ADD COLUMN external_job_id varchar(64) NULL,
        ADD COLUMN job_category varchar(16) DEFAULT 'system' {_in("job_category", CATEGORIES)}""",
    "CREATE INDEX idx_external_job ON job_tracking (external_job_id)",
    "CREATE INDEX idx_job_tracking_context_id ON job_tracking (context_id)",
    "CREATE INDEX idx_job_tracking_category ON job_tracking (job_category)",
    "CREATE INDEX idx_job_tracking_category_status_started"
    " ON job_tracking (job_category, status, started_at)",
]

POSTGRESQL_C = [
    "ALTER TABLE log_events ADD COLUMN external_job_id varchar(255) NULL",
    "CREATE INDEX idx_log_events_external_job_id ON log_events (external_job_id)",
]

DDL = {
    "mysql": {"a": MARIADB_A, "b": MARIADB_A + MARIADB_B, "c": MARIADB_A + MARIADB_B + MARIADB_C},
    "postgresql": {
        "a": POSTGRESQL_A,
        "b": POSTGRESQL_A + POSTGRESQL_B,
        "c": POSTGRESQL_A + POSTGRESQL_B + POSTGRESQL_C,
    },
}

#: The columns joblog widens on each vintage (what the fingerprint may see change type).
WIDENED = {
    "a": {("job_tracking", "job_type"), ("job_tracking", "owner"), ("job_steps", "name")},
    "b": {
        ("job_tracking", "job_type"),
        ("job_tracking", "owner"),
        ("job_steps", "name"),
        ("job_tracking", "context_id"),
        ("job_tracking", "external_job_id"),
    },
}
WIDENED["c"] = WIDENED["b"]
#: Columns revision 0004 gives MariaDB's exact collation (utf8mb4_nopad_bin).
EXACT_ID_COLUMNS = {
    ("job_tracking", "external_job_id"),
    ("job_tracking", "context_id"),
    ("log_events", "external_job_id"),
    ("failover_jobs", "job_id"),
}

# IDs as the Go tracker and the GUI make them.
GUI_ID = "unified-live-failover-pgtest2-1758553933"
GUI_ID_TEST = "unified-test-failover-web01-1758554100"
CONTEXT_ID = "ctx-pgtest2-20250922-143213"
PARENT = "b1c7a0de-53c1-4c1e-9f0e-2a9c3f41d001"
CHILD = "b1c7a0de-53c1-4c1e-9f0e-2a9c3f41d002"
FAILED = "b1c7a0de-53c1-4c1e-9f0e-2a9c3f41d003"
PENDING = "b1c7a0de-53c1-4c1e-9f0e-2a9c3f41d004"
CANCELLED = "b1c7a0de-53c1-4c1e-9f0e-2a9c3f41d005"
ALL_JOBS = (PARENT, CHILD, FAILED, PENDING, CANCELLED)
T0 = datetime(2025, 9, 22, 14, 32, 13)


def build(url: str, vintage: str) -> None:
    """Build ``vintage`` of the platform's database in the empty database at ``url``
    and fill it as the Go service does."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in DDL[engine.dialect.name][vintage]:
                connection.exec_driver_sql(statement)
        with engine.begin() as connection:
            insert_go_rows(connection, vintage)
    finally:
        engine.dispose()


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _cast_json(connection: sa.Connection, name: str) -> str:
    return f"CAST(:{name} AS jsonb)" if connection.dialect.name == "postgresql" else f":{name}"


def insert_go_rows(connection: sa.Connection, vintage: str, *, tag: str = "") -> list[str]:
    """Rows as the platform's Go tracker writes them: only the vintage's own columns,
    named in raw SQL. ``tag`` makes the IDs unique for a second batch; returns the job
    IDs written."""
    ids = [tag + job_id[len(tag) :] for job_id in ALL_JOBS]
    parent, child, failed, pending, cancelled = ids
    gui_id, context_id = f"{GUI_ID}{tag}", f"{CONTEXT_ID}{tag}"
    meta = _cast_json(connection, "metadata")
    if not tag:
        connection.execute(
            sa.text(
                "INSERT INTO vm_replication_contexts (context_id, vm_name, vmware_vm_id,"
                " current_status, created_at, updated_at) VALUES"
                " (:c1, 'pgtest2', '4205a1b2-vm-pgtest2', 'ready_for_failover', :t, :t),"
                " ('ctx-web01-20250921', 'web01 Prod ✓', '4205c3d4-vm-web01', 'replicating',"
                " :t, :t)"
            ),
            {"c1": CONTEXT_ID, "t": _at(-86400)},
        )
    jobs: list[dict[str, Any]] = [
        {
            "id": parent,
            "parent": None,
            "type": "failover",
            "op": "live-failover",
            "status": "running",
            "cs": None,
            "metadata": _json(
                {"vm_name": "pgtest2", "failover_type": "live", "vm_context_id": context_id}
            ),
            "error": None,
            "started": _at(0),
            "completed": None,
            "percent": 40,
            "canceled": None,
            "owner": "oma-api",
            "external": gui_id,
            "category": "failover",
        },
        {
            "id": child,
            "parent": parent,
            "type": "cloudstack",
            "op": "create-vm",
            "status": "completed",
            "cs": "0d6a3f9c-cs-job-1",
            "metadata": _json({"zone": "zone-1", "nested": {"retries": [1, 2]}}),
            "error": None,
            "started": _at(5),
            "completed": _at(65),
            "percent": 100,
            "canceled": None,
            "owner": "oma-api",
            "external": None,
            "category": "failover",
        },
        {
            "id": failed,
            "parent": None,
            "type": "cleanup",
            "op": "test-failover-cleanup",
            "status": "failed",
            "cs": None,
            "metadata": _json({"vm_name": "web01 Prod ✓", "failover_type": "test"}),
            "error": "Zeitüberschreitung: volume busy ✗",
            "started": _at(100),
            "completed": _at(160),
            "percent": 30,
            "canceled": None,
            "owner": "volume-daemon",
            "external": f"{GUI_ID_TEST}{tag}",
            "category": "failover",
        },
        {
            "id": pending,
            "parent": None,
            "type": "schedule_management",
            "op": "nightly-replication",
            "status": "pending",
            "cs": None,
            "metadata": None,
            "error": None,
            "started": None,
            "completed": None,
            "percent": 0,
            "canceled": None,
            "owner": None,
            "external": None,
            "category": "scheduler",
        },
        {
            "id": cancelled,
            "parent": None,
            "type": "bulk-operations",
            "op": "bulk-test-failover",
            "status": "cancelled",
            "cs": None,
            "metadata": _json({"vm_ids": ["vm-1", "vm-2"]}),
            "error": None,
            "started": _at(200),
            "completed": None,
            "percent": 10,
            "canceled": datetime(2025, 9, 22, 14, 36, 0, 123456),
            "owner": "gui",
            "external": None,
            "category": "bulk",
        },
    ]
    columns = (
        "id, parent_job_id, job_type, operation, status, cloudstack_job_id, metadata,"
        " error_message, started_at, completed_at, created_at, updated_at, percent_complete,"
        " canceled_at, owner"
    )
    values = (
        f":id, :parent, :type, :op, :status, :cs, {meta}, :error, :started, :completed,"
        " :created, :updated, :percent, :canceled, :owner"
    )
    if vintage in ("b", "c"):
        columns += ", context_id, external_job_id, job_category"
        values += ", :context, :external, :category"
    for number, job in enumerate(jobs):
        connection.execute(
            sa.text(f"INSERT INTO job_tracking ({columns}) VALUES ({values})"),
            {
                **job,
                "created": _at(number - 1),
                "updated": _at(number + 70),
                "context": context_id if job["type"] in ("failover", "cloudstack") else None,
            },
        )
    steps = [
        (parent, 1, "validate-vm", "completed", None),
        (parent, 2, "snapshot volumes", "completed", None),
        (parent, 3, "create destination VM", "running", None),
        (child, 1, "deploy", "completed", None),
        (failed, 1, "detach volume", "failed", "volume vol-17 busy"),
        (failed, 2, "delete snapshot", "skipped", None),
    ]
    step_ids: list[int] = []
    for number, (job_id, seq, name, status, error) in enumerate(steps):
        connection.execute(
            sa.text(
                "INSERT INTO job_steps (job_id, name, seq, status, started_at, completed_at,"
                f" error_message, metadata) VALUES (:job, :name, :seq, :status, :started,"
                f" :completed, :error, {meta})"
            ),
            {
                "job": job_id,
                "name": name,
                "seq": seq,
                "status": status,
                "started": datetime(2025, 9, 22, 14, 32, 14, 500000) + timedelta(seconds=number),
                "completed": None if status == "running" else _at(number + 30),
                "error": error,
                "metadata": _json({"attempt": seq}) if seq == 1 else None,
            },
        )
        step_ids.append(
            int(
                connection.execute(
                    sa.text("SELECT id FROM job_steps WHERE job_id = :job AND seq = :seq"),
                    {"job": job_id, "seq": seq},
                ).scalar_one()
            )
        )
    attrs = _cast_json(connection, "attrs")
    event_columns = "job_id, step_id, level, message, attrs, ts"
    event_values = f":job, :step, :level, :message, {attrs}, :ts"
    if vintage == "c":
        event_columns += ", external_job_id"
        event_values += ", :external"
    for number in range(40):
        job_id: str | None = [parent, child, failed, None][number % 4]
        carries = number % 3 == 0
        attributes: dict[str, Any] | None = {"component": "failover", "n": number}
        if carries:
            attributes = {"external_job_id": gui_id, "vm_name": "pgtest2"}
        elif number % 7 == 0:
            attributes = None
        connection.execute(
            sa.text(f"INSERT INTO log_events ({event_columns}) VALUES ({event_values})"),
            {
                "job": job_id,
                "step": step_ids[number % 3] if job_id == parent else None,
                "level": LEVELS[number % 4],
                "message": f"event {number}: VM pgtest2 → snapshot ✓ 数据库",
                "attrs": None if attributes is None else _json(attributes),
                "ts": datetime(2025, 9, 22, 14, 32, 20, number * 1000) + timedelta(seconds=number),
                "external": gui_id if carries and job_id == parent else None,
            },
        )
    failovers = [
        (f"{GUI_ID}{tag}", CONTEXT_ID, "vm-101", "live", "snapshotting", "pgtest2", None),
        (f"{GUI_ID_TEST}{tag}", None, "vm-102", "test", "failed", "web01 Prod ✓", "VM не найдена"),
        (f"unified-test-failover-db-ÄÖÜ-1758554200{tag}", None, "vm-103", "test", "completed",
         "db-ÄÖÜ", None),
    ]  # fmt: skip
    for number, (job_id, context, vm_id, kind, status, name, error) in enumerate(failovers):
        connection.execute(
            sa.text(
                "INSERT INTO failover_jobs (vm_context_id, job_id, vm_id, job_type, status,"
                " source_vm_name, source_vm_spec, error_message, created_at, updated_at,"
                " started_at, completed_at) VALUES (:context, :job, :vm, :kind, :status,"
                " :name, :spec, :error, :created, :updated, :started, :completed)"
            ),
            {
                "context": context,
                "job": job_id,
                "vm": vm_id,
                "kind": kind,
                "status": status,
                "name": name,
                "spec": _json({"cpus": 4, "memory_mb": 8192}),
                "error": error,
                "created": _at(number * 3600),
                "updated": _at(number * 3600 + 5),
                "started": _at(number * 3600 + 1),
                "completed": _at(number * 3600 + 540) if status == "completed" else None,
            },
        )
    if not tag:
        connection.execute(
            sa.text(
                "INSERT INTO replication_jobs (id, source_vm_id, status, progress_percent,"
                " created_at) VALUES ('job-20250922-101', '4205a1b2-vm-pgtest2', 'replicating',"
                " 61.5, :t)"
            ),
            {"t": datetime(2025, 9, 22, 10, 0, 0, 125000)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO ossea_configs (name, api_url) VALUES"
                " ('production-ossea', 'https://cloud.example.net/client/api')"
            )
        )
        connection.execute(
            sa.text("INSERT INTO schema_migrations (version, dirty) VALUES (20250922000001, :d)"),
            {"d": False},
        )
    return ids


def fingerprint(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Everything the platform owns: every table's rows (``columns``: the original
    columns only), every index (name, columns, uniqueness), every constraint, and every
    column's type, nullability and default."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            tables = sorted(set(inspector.get_table_names()))
            if columns is None:
                columns = {t: [c["name"] for c in inspector.get_columns(t)] for t in tables}
            rows = {}
            for table, names in columns.items():
                keys = inspector.get_pk_constraint(table)["constrained_columns"]
                query = f"SELECT {', '.join(names)} FROM {table} ORDER BY {', '.join(keys)}"
                rows[table] = [tuple(row) for row in connection.execute(sa.text(query))]
            return {
                "tables": tables,
                "columns": columns,
                "rows": rows,
                "indexes": _indexes(connection),
                "constraints": _constraints(connection),
                "types": _types(connection),
            }
    finally:
        engine.dispose()


def _indexes(connection: sa.Connection) -> set[tuple[str, str, tuple[str, ...], bool]]:
    if connection.dialect.name == "postgresql":
        query = (
            "SELECT t.relname, i.relname, ix.indisunique,"
            " array_agg(a.attname ORDER BY k.ord)"
            " FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid"
            " JOIN pg_class i ON i.oid = ix.indexrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'"
            " CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
            " GROUP BY t.relname, i.relname, ix.indisunique"
        )
        return {
            (str(t), str(i), tuple(cols), bool(unique))
            for t, i, unique, cols in connection.execute(sa.text(query))
        }
    query = (
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE,"
        " GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',')"
        " FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()"
        " GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE"
    )
    return {
        (str(t), str(i), tuple(str(cols).split(",")), not int(non_unique))
        for t, i, non_unique, cols in connection.execute(sa.text(query))
    }


def _constraints(connection: sa.Connection) -> set[tuple[str, ...]]:
    if connection.dialect.name == "postgresql":
        query = (
            "SELECT conrelid::regclass::text, conname, contype::text,"
            " pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace"
        )
    else:
        query = (
            "SELECT c.TABLE_NAME, c.CONSTRAINT_NAME, c.CONSTRAINT_TYPE,"
            " COALESCE(r.DELETE_RULE, k.CHECK_CLAUSE, '')"
            " FROM information_schema.TABLE_CONSTRAINTS c"
            " LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
            " ON r.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA"
            " AND r.CONSTRAINT_NAME = c.CONSTRAINT_NAME AND r.TABLE_NAME = c.TABLE_NAME"
            " LEFT JOIN information_schema.CHECK_CONSTRAINTS k"
            " ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA"
            " AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME AND k.TABLE_NAME = c.TABLE_NAME"
            " WHERE c.TABLE_SCHEMA = DATABASE()"
        )
    return {tuple(str(v) for v in row) for row in connection.execute(sa.text(query))}


def _types(connection: sa.Connection) -> dict[tuple[str, str], tuple[str, ...]]:
    if connection.dialect.name == "postgresql":
        query = (
            "SELECT table_name, column_name, data_type,"
            " COALESCE(character_maximum_length::text, ''), is_nullable,"
            " COALESCE(column_default, '') FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
    else:
        query = (
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, COALESCE(COLLATION_NAME, ''),"
            " IS_NULLABLE, COALESCE(COLUMN_DEFAULT, ''), EXTRA FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE()"
        )
    return {
        (str(row[0]), str(row[1])): tuple(str(v) for v in row[2:])
        for row in connection.execute(sa.text(query))
    }
