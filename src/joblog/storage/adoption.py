"""Adopting the older system's database: check that it has 0001_base's shape, and give
its indexes the names joblog declares.

A database the older system built has the right tables and columns, but its index
names are whatever its DDL said (the seed plan shows MariaDB's ``INDEX job_id
(job_id)``), where joblog's schema says ``idx_log_events_job_id``. Left alone, every
later revision that drops or changes an index by name would fail on such a database,
and it would never compare equal to ``schema.py``. Renaming is a catalog change: no
row is read or written (on SQLite the index is dropped and built again from the rows).
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import ReflectedIndex

from joblog.exceptions import SchemaError
from joblog.storage.dialects import backend_for
from joblog.storage.schema import metadata

__all__ = [
    "LATER_COLUMNS",
    "LATER_INDEXES",
    "OLDER_SYSTEM_COLUMNS",
    "DeclaredIndex",
    "base_indexes",
    "normalise_index_names",
    "rename_statements",
    "verify_older_system",
]

logger = logging.getLogger(__name__)

#: The older system's tables and the columns adoption needs (the shape of 0001_base).
OLDER_SYSTEM_COLUMNS: dict[str, tuple[str, ...]] = {
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

#: Columns later revisions add; finding one in an unmanaged database means it was
#: changed by hand, and replaying the revisions over it would fail half-way.
LATER_COLUMNS: dict[str, tuple[str, ...]] = {
    "job_tracking": ("external_job_id", "planned_steps", "cancel_requested", "heartbeat_at"),
    "job_steps": ("weight", "allow_failure"),
    "log_events": ("external_job_id",),
}


#: Indexes on the older system's columns that later revisions create: adoption leaves
#: them to those revisions rather than renaming a look-alike into their name.
LATER_INDEXES: frozenset[str] = frozenset({"idx_log_events_ts"})


class DeclaredIndex(NamedTuple):
    """An index (or unique constraint, which is one) that schema.py names."""

    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool


def base_indexes() -> list[DeclaredIndex]:
    """The indexes and unique constraints 0001_base builds, as schema.py names them."""
    declared: list[DeclaredIndex] = []
    for table_name, old_columns in OLDER_SYSTEM_COLUMNS.items():
        table = metadata.tables[table_name]
        candidates: list[tuple[Any, tuple[str, ...], bool]] = [
            (index.name, tuple(column.name for column in index.columns), bool(index.unique))
            for index in table.indexes
        ]
        candidates += [
            (constraint.name, tuple(column.name for column in constraint.columns), True)
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
        ]
        declared += [
            DeclaredIndex(table_name, str(name), columns, unique)
            for name, columns, unique in candidates
            if name not in LATER_INDEXES and set(columns) <= set(old_columns)
        ]
    return sorted(declared)


def verify_older_system(connection: sa.Connection) -> None:
    """Refuse to adopt a database that lacks what 0001_base has, or already has
    columns that later revisions would add, naming each."""
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    missing: list[str] = []
    clashing: list[str] = []
    for table, columns in OLDER_SYSTEM_COLUMNS.items():
        if table not in tables:
            missing.append(f"table {table}")
            continue
        present = {column["name"] for column in inspector.get_columns(table)}
        missing += [f"{table}.{name}" for name in columns if name not in present]
        clashing += [f"{table}.{name}" for name in LATER_COLUMNS.get(table, ()) if name in present]
    if "ingest_batches" in tables:
        clashing.append("table ingest_batches")
    if missing:
        raise SchemaError(
            "cannot adopt this database as the older system's: missing " + ", ".join(missing)
        )
    if clashing:
        raise SchemaError(
            "cannot adopt this database: it already has "
            + ", ".join(clashing)
            + " without joblog's migration history (changed by hand?); add the missing"
            " pieces or remove these, then stamp the matching revision with joblog db stamp"
        )


def normalise_index_names(connection: sa.Connection) -> list[tuple[str, str, str]]:
    """Rename each index whose table, columns and uniqueness match one 0001_base
    declares but whose name differs; return ``(table, old name, new name)`` per rename.

    Only plain indexes qualify (no expressions, no partial ``WHERE``), so that a rename
    never gives a declared name to an index that does something else. A declared name
    already present is left alone, as are further duplicates of one index. Runs on the
    caller's connection and transaction; on PostgreSQL and MariaDB the caller commits.
    """
    inspector = sa.inspect(connection)
    renames: list[tuple[str, str, str]] = []
    for table in OLDER_SYSTEM_COLUMNS:
        reflected = inspector.get_indexes(table)
        present = {index["name"] for index in reflected}
        present |= {constraint["name"] for constraint in inspector.get_unique_constraints(table)}
        plain = sorted(
            (index for index in reflected if _is_plain(index)),
            key=lambda index: str(index["name"]),
        )
        for declared in (declared for declared in base_indexes() if declared.table == table):
            if declared.name in present:
                continue
            match = next(
                (
                    str(index["name"])
                    for index in plain
                    if tuple(index["column_names"]) == declared.columns
                    and bool(index["unique"]) == declared.unique
                    and index["name"] in present
                ),
                None,
            )
            if match is None:
                continue
            for statement in rename_statements(connection.dialect, declared, match):
                connection.exec_driver_sql(statement)
            present = (present - {match}) | {declared.name}
            renames.append((table, match, declared.name))
            logger.info("adoption renamed index %s.%s to %s", table, match, declared.name)
    return renames


def rename_statements(dialect: sa.Dialect, declared: DeclaredIndex, old_name: str) -> list[str]:
    """The DDL that renames index ``old_name`` to ``declared.name`` on this dialect."""
    return backend_for(dialect).rename_index_statements(
        dialect, declared.table, old_name, declared.name, declared.columns, declared.unique
    )


def _is_plain(index: ReflectedIndex) -> bool:
    """A reflected index over columns only, with no partial WHERE or INCLUDE list."""
    options: dict[str, Any] = dict(index.get("dialect_options", {}))
    return (
        index["name"] is not None
        and None not in index["column_names"]
        and not index.get("expressions")
        and not any(key.endswith("_where") and value for key, value in options.items())
        and not options.get("postgresql_include")
    )
