"""Adopting the platform's database: recognise its vintage, plan what joblog adds, and
record what the platform owns so that no revision ever drops or changes it.

The platform (the Go failover service the seed comes from) has had three shapes of its
job tables, each a real ``vintage`` (facts from its production dump and migrations, see
``docs/ADOPTING.md``):

* **a**, before the platform's own 2025-09-22 migration;
* **b**, after it: ``job_tracking`` also has ``context_id``, ``external_job_id`` and
  ``job_category``;
* **c**, production today: b plus the seed's ``log_events.external_job_id``.

Adoption never renames, drops or rewrites what the platform built: its indexes keep
their names (the platform's own later migrations refer to them), its values stay as
they are. It writes one row into ``joblog_adoption`` (what the origin had, column by
column, and which columns joblog must widen to write its values), stamps the revision
the vintage matches, and leaves the rest to the revisions, which ask this record
(:func:`origin_record`) before adding or dropping anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from joblog._ids import utcnow
from joblog.exceptions import SchemaError
from joblog.storage import widening
from joblog.storage.widening import PlannedWidening

__all__ = [
    "ADOPTION_TABLE",
    "JOBLOG_COLUMNS",
    "ORIGIN_TABLES",
    "VINTAGES",
    "AdoptionPlan",
    "OriginRecord",
    "Vintage",
    "origin_record",
    "plan_adoption",
    "read_record",
    "record_statements",
    "write_record",
]

#: The platform's tables joblog reads and writes.
ORIGIN_TABLES = ("job_tracking", "job_steps", "log_events", "failover_jobs")

#: The record of an adoption, beside the platform's tables (and like alembic_version,
#: not declared in schema.py: a database joblog built itself has none).
ADOPTION_TABLE = "joblog_adoption"
_record_metadata = sa.MetaData()
adoption_table = sa.Table(
    ADOPTION_TABLE,
    _record_metadata,
    sa.Column("vintage", sa.String(8), primary_key=True),
    sa.Column("stamped_revision", sa.String(64), nullable=False),
    sa.Column("adopted_at", sa.DateTime(), nullable=False),
    sa.Column("origin", sa.Text(), nullable=False),
)

_VINTAGE_A: dict[str, tuple[str, ...]] = {
    "job_tracking": (
        "id",
        "parent_job_id",
        "job_type",
        "operation",
        "status",
        "cloudstack_job_id",
        "metadata",
        "error_message",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
        "percent_complete",
        "canceled_at",
        "owner",
    ),
    "job_steps": (
        "id",
        "job_id",
        "name",
        "seq",
        "status",
        "started_at",
        "completed_at",
        "error_message",
        "metadata",
    ),
    "log_events": ("id", "job_id", "step_id", "level", "message", "attrs", "ts"),
    "failover_jobs": (
        "id",
        "vm_context_id",
        "job_id",
        "vm_id",
        "replication_job_id",
        "job_type",
        "status",
        "source_vm_name",
        "source_vm_spec",
        "destination_vm_id",
        "ossea_snapshot_id",
        "linstor_snapshot_name",
        "linstor_config_id",
        "network_mappings",
        "error_message",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
    ),
}
_B_ADDS = {"job_tracking": ("context_id", "external_job_id", "job_category")}
_C_ADDS = {"log_events": ("external_job_id",)}


def _plus(
    base: Mapping[str, tuple[str, ...]], more: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    return {table: base[table] + more.get(table, ()) for table in base}


@dataclass(frozen=True, slots=True)
class Vintage:
    """One real shape of the platform's tables, and the revision it matches."""

    name: str
    described: str
    stamp: str
    columns: Mapping[str, tuple[str, ...]]
    #: Columns this vintage adds to the one before; found alone they mean a
    #: half-applied platform migration.
    adds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: Newest first: detection takes the first whose columns are all present.
VINTAGES: tuple[Vintage, ...] = (
    Vintage(
        "c",
        "production today: b plus log_events.external_job_id",
        "0002_external_job_id",
        _plus(_plus(_VINTAGE_A, _B_ADDS), _C_ADDS),
        _C_ADDS,
    ),
    Vintage(
        "b",
        "after the platform's 2025-09-22 migration: context_id, external_job_id, job_category",
        "0001_base",
        _plus(_VINTAGE_A, _B_ADDS),
        _B_ADDS,
    ),
    Vintage("a", "before the platform's 2025-09-22 migration", "0001_base", _VINTAGE_A),
)

#: Columns only joblog's revisions add; finding one in a database without joblog's
#: migration history means a hand-applied change that replaying them would trip over.
JOBLOG_COLUMNS: dict[str, tuple[str, ...]] = {
    "job_tracking": ("planned_steps", "cancel_requested", "heartbeat_at"),
    "job_steps": ("weight", "allow_failure"),
}
#: Indexes joblog's revisions create on the platform's tables, by the columns they cover.
JOBLOG_INDEXES: dict[str, tuple[str, tuple[str, ...]]] = {
    "idx_job_tracking_context_id": ("job_tracking", ("context_id",)),
    "idx_job_tracking_external_job_id": ("job_tracking", ("external_job_id",)),
    "idx_log_events_external_job_id": ("log_events", ("external_job_id",)),
    "idx_log_events_ts": ("log_events", ("ts",)),
}


@dataclass(frozen=True, slots=True)
class OriginRecord:
    """What the platform's tables held when joblog adopted them."""

    vintage: str
    stamp: str
    #: table -> its columns, in order.
    columns: dict[str, list[str]]
    #: table -> [index name, [columns], unique].
    indexes: dict[str, list[tuple[str, list[str], bool]]]
    #: The columns joblog widens (0003a) and how to restore them.
    widenings: list[PlannedWidening]

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, [])

    def index_on(self, table: str, columns: tuple[str, ...]) -> str | None:
        """The name of the origin's index on exactly ``columns``, if it has one."""
        for name, covered, _unique in self.indexes.get(table, []):
            if tuple(covered) == columns:
                return name
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OriginRecord:
        data: dict[str, Any] = json.loads(text)
        return cls(
            vintage=data["vintage"],
            stamp=data["stamp"],
            columns=data["columns"],
            indexes={
                table: [(str(n), list(c), bool(u)) for n, c, u in found]
                for table, found in data["indexes"].items()
            },
            widenings=[PlannedWidening(**w) for w in data["widenings"]],
        )


@dataclass(frozen=True, slots=True)
class AdoptionPlan:
    """What adopting this database does: its vintage, the stamp, the record."""

    vintage: Vintage
    record: OriginRecord

    def describe(self) -> list[str]:
        lines = [
            f"platform database, vintage {self.vintage.name} ({self.vintage.described})",
            f"stamp {self.vintage.stamp}, keeping every table, column, value and index name",
        ]
        if not self.record.has_column("job_tracking", "context_id"):
            lines.append("add job_tracking.context_id (0003a)")
        lines += [f"widen {w.describe()} (0003a)" for w in self.record.widenings]
        return lines


def plan_adoption(connection: sa.Connection) -> AdoptionPlan:
    """Recognise the platform's vintage and plan its adoption, reading only.

    Refuses (``SchemaError``, nothing changed) a database that matches no vintage: a
    table or column missing, a platform migration half-applied, or joblog's own columns
    or tables already there without joblog's migration history.
    """
    if connection.dialect.name not in ("mysql", "postgresql"):
        raise SchemaError(
            "the platform's tables are adopted on MariaDB (its own backend) and PostgreSQL,"
            f" not on {connection.dialect.name}"
        )
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    missing_tables = [t for t in ORIGIN_TABLES if t not in tables]
    if missing_tables:
        raise SchemaError(
            "cannot adopt this database as the platform's: missing table "
            + ", ".join(missing_tables)
        )
    present = {t: [c["name"] for c in inspector.get_columns(t)] for t in ORIGIN_TABLES}
    vintage = _detect(present)
    _refuse_joblog_leftovers(present, tables)
    indexes = {
        table: [
            (str(index["name"]), [str(c) for c in index["column_names"]], bool(index["unique"]))
            for index in inspector.get_indexes(table)
            if index["name"] is not None
        ]
        for table in ORIGIN_TABLES
    }
    _refuse_index_name_clashes(indexes)
    record = OriginRecord(
        vintage=vintage.name,
        stamp=vintage.stamp,
        columns=present,
        indexes=indexes,
        widenings=widening.plan(connection, present),
    )
    return AdoptionPlan(vintage, record)


def _detect(present: Mapping[str, list[str]]) -> Vintage:
    def lacking(vintage: Vintage) -> list[str]:
        return [
            f"{table}.{column}"
            for table, columns in vintage.columns.items()
            for column in columns
            if column not in present[table]
        ]

    for index, vintage in enumerate(VINTAGES):
        if lacking(vintage):
            continue
        newer = VINTAGES[index - 1] if index else None
        half = [
            f"{table}.{column}"
            for table, columns in (newer.adds if newer else {}).items()
            for column in columns
            if column in present[table]
        ]
        if newer is not None and half:
            raise SchemaError(
                f"cannot adopt this database: it is vintage {vintage.name} with part of"
                f" vintage {newer.name} ({', '.join(half)}) but not "
                + ", ".join(lacking(newer))
                + "; finish or undo the platform's migration first"
            )
        return vintage
    raise SchemaError(
        "cannot adopt this database as the platform's (no vintage matches): missing "
        + ", ".join(lacking(VINTAGES[-1]))
    )


def _refuse_joblog_leftovers(present: Mapping[str, list[str]], tables: set[str]) -> None:
    clashing = [
        f"{table}.{column}"
        for table, columns in JOBLOG_COLUMNS.items()
        for column in columns
        if column in present[table]
    ]
    clashing += [f"table {t}" for t in ("ingest_batches", "dashboard_sessions") if t in tables]
    if clashing:
        raise SchemaError(
            "cannot adopt this database: it already has "
            + ", ".join(clashing)
            + " without joblog's migration history (changed by hand?); remove these, or"
            " stamp the matching revision with joblog db stamp"
        )


def _refuse_index_name_clashes(indexes: Mapping[str, list[tuple[str, list[str], bool]]]) -> None:
    """An origin index with a name joblog creates but other columns would make a
    revision fail half-way; found now, it stops adoption before any change."""
    for name, (table, columns) in JOBLOG_INDEXES.items():
        for found, covered, _unique in indexes[table]:
            if found == name and tuple(covered) != columns:
                raise SchemaError(
                    f"cannot adopt this database: its index {table}.{name} covers"
                    f" ({', '.join(covered)}), but joblog creates {name} on"
                    f" ({', '.join(columns)})"
                )


def record_statements(
    plan: AdoptionPlan,
) -> list[sa.schema.ExecutableDDLElement | sa.Delete | sa.Insert]:
    """The statements that write the adoption record (run, or printed by ``--sql``)."""
    return [
        sa.schema.CreateTable(adoption_table, if_not_exists=True),
        sa.delete(adoption_table),
        sa.insert(adoption_table).values(
            vintage=plan.vintage.name,
            stamped_revision=plan.vintage.stamp,
            adopted_at=utcnow(),
            origin=plan.record.to_json(),
        ),
    ]


def write_record(connection: sa.Connection, plan: AdoptionPlan) -> None:
    """Write the record (replacing one a failed run left) and commit."""
    for statement in record_statements(plan):
        connection.execute(statement)
    connection.commit()


def read_record(bind: sa.Connection) -> OriginRecord | None:
    """The adoption record, or None for a database joblog built itself."""
    if ADOPTION_TABLE not in sa.inspect(bind).get_table_names():
        return None
    text = bind.execute(sa.select(adoption_table.c.origin)).scalar()
    return None if text is None else OriginRecord.from_json(text)


def origin_record(context: MigrationContext) -> OriginRecord | None:
    """The record, for a revision: read from the database, or in offline (``--sql``)
    mode handed over by ``joblog.storage.migrate`` in the Alembic config."""
    if context.as_sql:
        config = context.config
        found = config.attributes.get("origin_record") if config is not None else None
        return found if isinstance(found, OriginRecord) else None
    assert context.connection is not None, "online migrations run on a connection"
    return read_record(context.connection)


def drop_record_statement() -> sa.schema.ExecutableDDLElement:
    return sa.schema.DropTable(adoption_table, if_exists=True)
