"""Widening the platform's narrow columns so that joblog can write its values, and
restoring them exactly.

The platform declares ``job_tracking.job_type`` an ENUM of its own sixteen job types
(a CHECK on PostgreSQL), and a few text columns narrower than joblog accepts
(``owner varchar(100)``, ``job_steps.name varchar(200)``, the IDs ``varchar(64)``). A job
of type ``backup``, or a 100-character owner, would be refused by the database; so the
adoption revision (0003a) widens these columns. Widening keeps every value (an ENUM's
values are its labels; a longer VARCHAR holds a shorter one), and the origin's exact
definition is recorded so that a downgrade restores it, when every value still fits.

The statuses and levels joblog writes (``pending running completed failed cancelled``,
steps ``running completed failed skipped``, levels ``DEBUG INFO WARN ERROR``) are
already within the platform's ENUMs, which therefore stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from joblog.exceptions import SchemaError

__all__ = [
    "WIDENED",
    "PlannedWidening",
    "existing_checks",
    "plan",
    "restore_statements",
    "unfit_values",
    "widen_statements",
]

#: (table, column, the VARCHAR length joblog needs): what joblog writes there.
WIDENED: tuple[tuple[str, str, int], ...] = (
    ("job_tracking", "job_type", 50),
    ("job_tracking", "owner", 255),
    ("job_tracking", "context_id", 255),
    ("job_tracking", "external_job_id", 255),
    ("job_steps", "name", 255),
)

_MARIADB_TYPE = re.compile(r"^(enum\((?:'(?:[^'\\]|''|\\.)*',?)*\)|varchar\((\d+)\))", re.I)
_ENUM_LABEL = re.compile(r"'((?:[^'\\]|''|\\.)*)'")
_PG_VARCHAR = re.compile(r"^character varying\((\d+)\)$")


@dataclass(frozen=True, slots=True)
class PlannedWidening:
    """One column joblog widens, with what restores it."""

    table: str
    column: str
    #: What it was, for people: ``enum(16 values)``, ``varchar(64)``, ``CHECK ...``.
    was: str
    becomes: str
    #: MariaDB: the column's definition as SHOW CREATE TABLE gives it, before and after.
    #: PostgreSQL: its type (format_type), before and after.
    original: str
    widened: str
    #: PostgreSQL CHECK constraints on this column alone: [name, definition].
    checks: list[list[str]]
    #: A condition every non-NULL value must meet for the original to be restored.
    restorable_when: str

    def describe(self) -> str:
        return f"{self.table}.{self.column} from {self.was} to {self.becomes}"


def plan(connection: sa.Connection, present: Mapping[str, list[str]]) -> list[PlannedWidening]:
    """The widenings this database needs (reading only)."""
    planned: list[PlannedWidening] = []
    for table, column, length in WIDENED:
        if column not in present.get(table, []):
            continue  # joblog adds it at its own width
        if connection.dialect.name == "postgresql":
            found = _plan_postgresql(connection, table, column, length)
        else:
            found = _plan_mariadb(connection, table, column, length)
        if found is not None:
            planned.append(found)
    return planned


def _plan_mariadb(
    connection: sa.Connection, table: str, column: str, length: int
) -> PlannedWidening | None:
    create = connection.exec_driver_sql(f"SHOW CREATE TABLE `{table}`").one()[1]
    definition = next(
        (
            line.strip().removeprefix(f"`{column}` ").rstrip(",")
            for line in str(create).splitlines()
            if line.strip().startswith(f"`{column}` ")
        ),
        None,
    )
    if definition is None:
        raise SchemaError(f"cannot read the definition of {table}.{column}")
    match = _MARIADB_TYPE.match(definition)
    if match is None:
        if definition.lower().startswith(("text", "mediumtext", "longtext")):
            return None
        raise SchemaError(f"cannot widen {table}.{column}: unexpected type in {definition!r}")
    quoted = f"`{column}`"
    if match.group(2) is not None:
        current = int(match.group(2))
        if current >= length:
            return None
        was, condition = f"varchar({current})", f"CHAR_LENGTH({quoted}) <= {current}"
    else:
        labels = _ENUM_LABEL.findall(match.group(1))
        was = f"enum of {len(labels)} values"
        condition = f"BINARY {quoted} IN (" + ", ".join(f"'{label}'" for label in labels) + ")"
    widened = f"varchar({length})" + definition[match.end() :]
    return PlannedWidening(
        table, column, was, f"varchar({length})", definition, widened, [], condition
    )


def _plan_postgresql(
    connection: sa.Connection, table: str, column: str, length: int
) -> PlannedWidening | None:
    row = connection.execute(
        sa.text(
            "SELECT format_type(a.atttypid, a.atttypmod), t.typtype, a.attnum"
            " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = CAST(:table AS regclass) AND a.attname = :column"
        ),
        {"table": table, "column": column},
    ).one()
    type_name, kind, attnum = str(row[0]), str(row[1]), int(row[2])
    if kind == "e":
        raise SchemaError(
            f"cannot widen {table}.{column}: it has the enum type {type_name}; joblog adopts"
            " PostgreSQL shapes whose enumerations are CHECK constraints on text columns"
        )
    checks = [
        [str(name), str(definition)]
        for name, definition in connection.execute(
            sa.text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = CAST(:table AS regclass) AND contype = 'c'"
                " AND conkey = ARRAY[CAST(:attnum AS smallint)] ORDER BY conname"
            ),
            {"table": table, "attnum": attnum},
        )
    ]
    varchar = _PG_VARCHAR.match(type_name)
    narrower = varchar is not None and int(varchar.group(1)) < length
    if varchar is None and type_name != "text":
        raise SchemaError(f"cannot widen {table}.{column}: unexpected type {type_name}")
    if not narrower and not checks:
        return None
    conditions = [definition.removeprefix("CHECK ") for _name, definition in checks]
    if narrower and varchar is not None:
        conditions.append(f'char_length("{column}") <= {varchar.group(1)}')
    was = " ".join([type_name] + [f"with {name}" for name, _ in checks])
    becomes = f"character varying({length})" if narrower else type_name
    return PlannedWidening(
        table, column, was, becomes, type_name, becomes, checks, " AND ".join(conditions)
    )


def widen_statements(dialect: str, planned: Sequence[PlannedWidening]) -> list[str]:
    """The DDL that widens the planned columns, one ALTER TABLE a table on MariaDB (one
    table copy, not one a column); each statement is safe to run again."""
    if dialect != "postgresql":
        return _mariadb_modify(planned, lambda w: w.widened)
    statements: list[str] = []
    for w in planned:
        statements += [
            f'ALTER TABLE "{w.table}" DROP CONSTRAINT IF EXISTS "{name}"' for name, _ in w.checks
        ]
        if w.widened != w.original:
            statements.append(f'ALTER TABLE "{w.table}" ALTER COLUMN "{w.column}" TYPE {w.widened}')
    return statements


def restore_statements(
    dialect: str, planned: Sequence[PlannedWidening], existing: frozenset[str] = frozenset()
) -> list[str]:
    """The DDL that gives the planned columns their original definitions back; CHECK
    constraints named in ``existing`` (never dropped: a widening that failed and was
    rolled back) are not added again."""
    if dialect != "postgresql":
        return _mariadb_modify(planned, lambda w: w.original)
    statements: list[str] = []
    for w in planned:
        if w.widened != w.original:
            statements.append(
                f'ALTER TABLE "{w.table}" ALTER COLUMN "{w.column}" TYPE {w.original}'
            )
        statements += [
            f'ALTER TABLE "{w.table}" ADD CONSTRAINT "{name}" {definition}'
            for name, definition in w.checks
            if name not in existing
        ]
    return statements


def _mariadb_modify(
    planned: Sequence[PlannedWidening], definition: Callable[[PlannedWidening], str]
) -> list[str]:
    by_table: dict[str, list[str]] = {}
    for w in planned:
        by_table.setdefault(w.table, []).append(f"MODIFY `{w.column}` {definition(w)}")
    return [f"ALTER TABLE `{table}` {', '.join(parts)}" for table, parts in by_table.items()]


def existing_checks(
    connection: sa.Connection, planned: Sequence[PlannedWidening]
) -> frozenset[str]:
    """The names of the planned widenings' CHECK constraints that are still there."""
    names = [name for w in planned for name, _ in w.checks]
    if connection.dialect.name != "postgresql" or not names:
        return frozenset()
    found = connection.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conname IN :names").bindparams(
            sa.bindparam("names", expanding=True)
        ),
        {"names": names},
    )
    return frozenset(str(name) for name in found.scalars())


def unfit_values(connection: sa.Connection, planned: PlannedWidening) -> list[tuple[str, int]]:
    """Values (up to five, with their row counts) that the original definition would
    refuse; restoring it is safe when there are none."""
    quote = '"' if connection.dialect.name == "postgresql" else "`"
    column = f"{quote}{planned.column}{quote}"
    rows = connection.execute(
        sa.text(
            f"SELECT {column}, COUNT(*) FROM {quote}{planned.table}{quote}"
            f" WHERE {column} IS NOT NULL AND NOT ({planned.restorable_when})"
            f" GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT 5"
        )
    ).all()
    return [(str(value), int(count)) for value, count in rows]


def restore_refusals(connection: sa.Connection, planned: Sequence[PlannedWidening]) -> str:
    """Why the original definitions cannot be restored now (values they do not allow),
    or "" when they can. Asked by the revision and, before any revision runs, by a
    downgrade that would pass it (so that nothing is undone before the refusal)."""
    refusals = []
    for widening in planned:
        unfit = unfit_values(connection, widening)
        if unfit:
            shown = ", ".join(f"{value!r} ({count} rows)" for value, count in unfit)
            refusals.append(f"{widening.table}.{widening.column} holds {shown}")
    if not refusals:
        return ""
    return (
        "cannot restore the platform's original column definitions: "
        + "; ".join(refusals)
        + ", which they do not allow. Delete or change those rows (or keep"
        " joblog's schema); nothing was changed"
    )
