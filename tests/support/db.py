"""Test helpers that read tables directly."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from joblog.storage import schema
from joblog.storage.store import Store


def rows(store: Store, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        query = sa.select(table)
        if where:
            query = query.where(*where)
        result = [dict(row) for row in conn.execute(query.order_by(table.c.id)).mappings()]
    for row in result:
        for key in ("attrs", "metadata", "planned_steps"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return result


def events(store: Store, *where: Any) -> list[dict[str, Any]]:
    return rows(store, schema.log_events, *where)


def steps_by_id(store: Store) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows(store, schema.job_steps)}


def jobs_by_id(store: Store) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows(store, schema.job_tracking)}
