"""Rows in joblog's own schema as it stood at 0001_base (a joblog database from before
the seed's change), for the backfill tests on every backend.

Not the platform's database: its three real vintages are in ``platform_vintages``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from joblog.storage import migrate

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


def create_base_revision_database(url: str) -> None:
    """joblog's schema at 0001_base, with the rows of :func:`insert_realistic_rows`."""
    migrate.upgrade(url, "0001_base")
    insert_realistic_rows(url)
