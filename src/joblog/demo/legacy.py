"""Writing rows of the older system's ``failover_jobs`` table.

joblog only reads that table in production (resolution's last tier); this writer exists
so the demo and tests can show the legacy tier working on a fresh database.
"""

from __future__ import annotations

from datetime import datetime

from joblog._ids import utcnow
from joblog.storage import schema
from joblog.storage.rows import to_naive_utc
from joblog.storage.store import Store

__all__ = ["insert_failover_job"]


def insert_failover_job(
    store: Store,
    *,
    job_id: str,
    job_type: str = "live",
    status: str = "pending",
    vm_id: str | None = None,
    source_vm_name: str | None = None,
    error_message: str | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> None:
    """Insert one failover_jobs row; ``job_type`` and ``status`` must be the table's ENUM values."""
    if job_type not in schema.FAILOVER_JOB_TYPES:
        raise ValueError(f"job_type must be one of {schema.FAILOVER_JOB_TYPES}")
    if status not in schema.FAILOVER_STATUSES:
        raise ValueError(f"status must be one of {schema.FAILOVER_STATUSES}")
    created = to_naive_utc(created_at) if created_at is not None else utcnow()
    row = {
        "job_id": job_id,
        "vm_id": vm_id,
        "job_type": job_type,
        "status": status,
        "source_vm_name": source_vm_name,
        "error_message": error_message,
        "created_at": created,
        "updated_at": to_naive_utc(updated_at) if updated_at is not None else created,
        "completed_at": to_naive_utc(completed_at) if completed_at is not None else None,
    }
    store.insert_failover_job(row)
