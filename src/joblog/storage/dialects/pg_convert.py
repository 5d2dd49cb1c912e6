"""PostgreSQL: ``joblog db partition``, a plain ``log_events`` made partitioned while in use.

Nothing is copied: the old table becomes the partition ``log_events_until_<B>`` (range
``MINVALUE`` to a boundary ``B``, the first interval boundary at least a day ahead), and
new partitions start at ``B``. What makes that attach instant instead of a locked scan of
every row is prepared first, while writers go on:

1. ``divert``: a trigger sends rows dated at or after ``B`` (normally none: they would be
   dated a day ahead) to ``log_events_overflow`` instead, and the rows already there move
   too, so that
2. ``CHECK (ts < B)`` can be added ``NOT VALID`` and validated (a scan under SHARE UPDATE
   EXCLUSIVE: reads and writes continue), and no insert is ever refused by it;
3. a unique index on ``(id, ts)``, built ``CONCURRENTLY``, becomes a constraint: the
   partitioned table's primary key attaches to it;
4. ``log_events_partitioned``, an empty partitioned table of the same columns, defaults,
   indexes and foreign keys, with its default partition and partitions from ``B`` on;
5. ``swap``, one short transaction under ACCESS EXCLUSIVE (the only stall writers see):
   the names change places, the old table is attached (its indexes and foreign keys
   match the new ones', so none is built or validated), the diverted rows go in.

Each lock is asked for with a short ``lock_timeout`` and asked again when not granted, so a
long query delays the conversion instead of stalling writers queued behind the lock, and a
writer that waits for the conversion while the conversion waits for it is never the one a
deadlock aborts (see :data:`~.pg_partitions.LOCK_TIMEOUT`). A failure
undoes steps 1-4 (the ``(id, ts)`` index stays for the next run); a conversion interrupted
by a crash is undone the same way by the next run. Databases adopted from the platform are
refused: their ``log_events`` stays as the platform built it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from joblog.exceptions import SchemaError
from joblog.storage.dialects.pg_partitions import (
    EVENT_PARTITIONS,
    LOCK_TIMEOUT,
    TABLE,
    check_interval,
    floor_to,
    fresh_partitions,
    lock_not_granted,
    partition_name,
)

__all__ = ["Conversion", "ConversionReport"]

SHELL = "log_events_partitioned"
OVERFLOW = "log_events_overflow"
DIVERT = "joblog_divert_events"
BOUND_CHECK = "log_events_conversion_bound"
ID_TS = "log_events_id_ts"
ADOPTION_TABLE = "joblog_adoption"
#: Attempts at each step's locks before the conversion gives up (about two minutes).
LOCK_ATTEMPTS = 240
_NAME_LIMIT = 63


@dataclass(frozen=True, slots=True)
class ConversionReport:
    """What ``joblog db partition`` did to a plain ``log_events``."""

    boundary: datetime
    #: The old table, now the partition of everything before ``boundary``.
    legacy: str
    created: tuple[str, ...]
    #: Rows dated at or after the boundary, held aside during the conversion.
    diverted: int
    #: How long ``log_events`` was locked for the swap: what writers waited at most.
    swap_seconds: float
    #: Times a lock was asked for again because it was not granted in time.
    lock_retries: int
    seconds: float


class Conversion:
    """Converts the plain ``log_events`` of one PostgreSQL database (see the module doc)."""

    def __init__(
        self,
        engine: sa.Engine,
        interval: timedelta,
        *,
        progress: Callable[[str], None] | None = None,
        lock_attempts: int = LOCK_ATTEMPTS,
    ) -> None:
        self.engine = engine
        self.interval = check_interval(interval)
        self.progress = progress or (lambda _line: None)
        self.lock_attempts = lock_attempts
        self.lock_retries = 0

    def refusal(self) -> str | None:
        """Why this database's ``log_events`` cannot be converted, or None."""
        with self.engine.connect() as connection:
            if connection.scalar(sa.text("SELECT to_regclass(:t)"), {"t": ADOPTION_TABLE}):
                return (
                    "this database was adopted from the platform: its log_events stays as the"
                    " platform built it (see docs/ADOPTING.md)"
                )
            kind = connection.scalar(
                sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": TABLE}
            )
            if kind != "r":
                return "log_events is not a plain table"
            for name, _definition, constraint in _indexes(connection):
                if constraint is None and _is_unique(connection, name):
                    return f"the unique index {name} cannot carry over to a partitioned table"
        return None

    def run(self, now: datetime) -> ConversionReport:
        refusal = self.refusal()
        if refusal is not None:
            raise SchemaError(f"cannot partition log_events: {refusal}")
        started = time.monotonic()
        self._undo()  # what an interrupted run left
        # The first boundary a day or more ahead: rows written meanwhile are all before it.
        day_ahead = now + timedelta(days=1)
        boundary = floor_to(day_ahead, self.interval)
        if boundary < day_ahead:
            boundary += self.interval
        step = "divert"
        try:
            self.progress(f"diverting events dated from {boundary} on to {OVERFLOW}")
            self._divert(boundary)
            step = "check"
            self.progress(f"checking every row is before {boundary} (writes continue)")
            self._check(boundary)
            step = "unique index"
            self.progress(f"building the unique index on (id, ts) concurrently ({ID_TS})")
            self._unique_id_ts()
            step = "partitioned table"
            self.progress(f"creating {SHELL} with its partitions from {boundary} on")
            created, indexes = self._shell(boundary)
            step = "swap"
            self.progress("swapping the tables (log_events locked for this moment only)")
            legacy, diverted, locked = self._swap(boundary, indexes)
        except Exception as error:
            try:
                self._undo()
            except Exception as undo_error:
                raise SchemaError(
                    f"partitioning log_events failed at the {step} step ({error}), and undoing"
                    f" it failed too ({undo_error}); run joblog db partition again"
                ) from error
            raise SchemaError(
                f"partitioning log_events failed at the {step} step and was undone: {error}"
            ) from error
        return ConversionReport(
            boundary,
            legacy,
            created,
            diverted,
            round(locked, 4),
            self.lock_retries,
            round(time.monotonic() - started, 3),
        )

    # -- steps ----------------------------------------------------------------------------

    def _divert(self, boundary: datetime) -> None:
        after = f"'{boundary.isoformat(sep=' ')}'"

        def install(connection: sa.Connection) -> None:
            connection.exec_driver_sql(f"CREATE TABLE {OVERFLOW} (LIKE {TABLE})")
            connection.exec_driver_sql(
                f"CREATE FUNCTION {DIVERT}() RETURNS trigger LANGUAGE plpgsql AS"
                f" $$ BEGIN INSERT INTO {OVERFLOW} VALUES (NEW.*); RETURN NULL; END $$"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER {DIVERT} BEFORE INSERT ON {TABLE} FOR EACH ROW"
                f" WHEN (NEW.ts >= {after}) EXECUTE FUNCTION {DIVERT}()"
            )

        self._locked(install)
        self._locked(
            lambda connection: connection.exec_driver_sql(
                f"WITH moved AS (DELETE FROM {TABLE} WHERE ts >= {after} RETURNING *)"
                f" INSERT INTO {OVERFLOW} SELECT * FROM moved"
            )
        )

    def _check(self, boundary: datetime) -> None:
        self._locked(
            lambda connection: connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT {BOUND_CHECK}"
                f" CHECK (ts < '{boundary.isoformat(sep=' ')}') NOT VALID"
            )
        )
        # A long scan, but under SHARE UPDATE EXCLUSIVE: reads and writes go on.
        self._locked(
            lambda connection: connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} VALIDATE CONSTRAINT {BOUND_CHECK}"
            )
        )

    def _unique_id_ts(self) -> None:
        with self.engine.connect() as connection:
            if connection.scalar(
                sa.text(
                    "SELECT 1 FROM pg_constraint WHERE conname = :n AND conrelid = to_regclass(:t)"
                ),
                {"n": ID_TS, "t": TABLE},
            ):
                return
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as connection:
            # A build that failed before leaves an INVALID index: drop it first.
            connection.exec_driver_sql(f"DROP INDEX CONCURRENTLY IF EXISTS {ID_TS}")
            connection.exec_driver_sql(
                f"CREATE UNIQUE INDEX CONCURRENTLY {ID_TS} ON {TABLE} (id, ts)"
            )
        self._locked(
            lambda connection: connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT {ID_TS} UNIQUE USING INDEX {ID_TS}"
            )
        )

    def _shell(self, boundary: datetime) -> tuple[tuple[str, ...], list[Index]]:
        """The partitioned table, under a temporary name, and the indexes it copied."""
        made: dict[str, tuple[tuple[str, ...], list[Index]]] = {}

        def create(connection: sa.Connection) -> None:
            indexes = _indexes(connection)
            constraints = connection.execute(
                sa.text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conrelid = to_regclass(:t) AND contype IN ('f', 'c')"
                    " AND conname <> :bound ORDER BY conname"
                ),
                {"t": TABLE, "bound": BOUND_CHECK},
            ).all()
            connection.exec_driver_sql(
                f"CREATE TABLE {SHELL} (LIKE {TABLE} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)"
            )
            connection.exec_driver_sql(
                f"ALTER TABLE {SHELL} ADD CONSTRAINT {SHELL}_pkey PRIMARY KEY (id, ts)"
            )
            for number, (_name, definition, constraint) in enumerate(indexes):
                if constraint is None:
                    connection.exec_driver_sql(
                        f"CREATE INDEX {SHELL}_{number}_idx ON {SHELL} USING {_using(definition)}"
                    )
            for name, definition in constraints:
                connection.exec_driver_sql(
                    f"ALTER TABLE {SHELL} ADD CONSTRAINT {name} {definition}"
                )
            created = []
            # fresh_partitions starts at the slot of ``boundary``, which is ``boundary``.
            for statement in fresh_partitions(boundary, self.interval, parent=SHELL):
                connection.exec_driver_sql(statement)
                created.append(statement.split()[2])
            made["shell"] = (tuple(created), indexes)

        self._locked(create)
        return made["shell"]

    def _swap(self, boundary: datetime, indexes: list[Index]) -> tuple[str, int, float]:
        legacy = partition_name(boundary, self.interval, prefix="until_")
        timing: dict[str, float] = {}
        diverted: dict[str, int] = {}

        def swap(connection: sa.Connection) -> None:
            connection.exec_driver_sql(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            timing["locked"] = time.monotonic()
            columns = ", ".join(EVENT_PARTITIONS.columns(connection))
            sequence = connection.scalar(
                sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": TABLE}
            )
            connection.exec_driver_sql(f"ALTER TABLE {TABLE} RENAME TO {legacy}")
            primary_key = "pk_log_events"
            for number, (name, _definition, constraint) in enumerate(indexes):
                if constraint == "p":
                    primary_key = name
                    connection.exec_driver_sql(
                        f"ALTER TABLE {legacy} RENAME CONSTRAINT {name} TO {legacy}_pkey"
                    )
                elif constraint is None:
                    connection.exec_driver_sql(
                        f"ALTER INDEX {name} RENAME TO {_legacy_index(legacy, name)}"
                    )
                    connection.exec_driver_sql(f"ALTER INDEX {SHELL}_{number}_idx RENAME TO {name}")
            connection.exec_driver_sql(f"ALTER TABLE {SHELL} RENAME TO {TABLE}")
            connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} RENAME CONSTRAINT {SHELL}_pkey TO {primary_key}"
            )
            connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} ATTACH PARTITION {legacy}"
                f" FOR VALUES FROM (MINVALUE) TO ('{boundary.isoformat(sep=' ')}')"
            )
            connection.exec_driver_sql(f"DROP TRIGGER {DIVERT} ON {legacy}")
            diverted["rows"] = connection.exec_driver_sql(
                f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {OVERFLOW}"
            ).rowcount
            connection.exec_driver_sql(f"DROP TABLE {OVERFLOW}")
            connection.exec_driver_sql(f"DROP FUNCTION {DIVERT}()")
            connection.exec_driver_sql(f"ALTER TABLE {legacy} DROP CONSTRAINT {BOUND_CHECK}")
            if sequence:
                # The sequence must not go when the old table, now a partition, is dropped.
                connection.exec_driver_sql(f"ALTER SEQUENCE {sequence} OWNED BY {TABLE}.id")

        self._locked(swap)
        return legacy, max(diverted.get("rows", 0), 0), time.monotonic() - timing["locked"]

    def _undo(self) -> None:
        """Remove what a conversion that did not finish left (steps 1, 2 and 4)."""

        def undo(connection: sa.Connection) -> None:
            found = connection.scalar(
                sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": TABLE}
            )
            if found != "r":
                return
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {DIVERT} ON {TABLE}")
            connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {BOUND_CHECK}"
            )
            if connection.scalar(sa.text("SELECT to_regclass(:t)"), {"t": OVERFLOW}):
                columns = ", ".join(EVENT_PARTITIONS.columns(connection))
                connection.exec_driver_sql(
                    f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {OVERFLOW}"
                )
                connection.exec_driver_sql(f"DROP TABLE {OVERFLOW}")
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {DIVERT}()")
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {SHELL}")

        self._locked(undo)

    # -- locks ----------------------------------------------------------------------------

    def _locked(self, work: Callable[[sa.Connection], object]) -> None:
        """``work`` in one transaction whose locks wait at most LOCK_TIMEOUT, tried again
        (up to ``lock_attempts`` times) while a lock is not granted in time."""
        for attempt in range(self.lock_attempts):
            try:
                with self.engine.begin() as connection:
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    work(connection)
                return
            except sa.exc.OperationalError as error:
                if not lock_not_granted(error) or attempt == self.lock_attempts - 1:
                    raise
                self.lock_retries += 1
                time.sleep(0.25)  # let the writers that queued behind the request through


#: An index of log_events: name, definition, constraint type (``p``, ``u``) or None.
Index = tuple[str, str, str | None]


def _indexes(connection: sa.Connection) -> list[Index]:
    """(name, definition, constraint type or None) of every index of ``log_events``."""
    rows = connection.execute(
        sa.text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), con.contype FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid LEFT JOIN pg_constraint con"
            " ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid"
            " WHERE i.indrelid = to_regclass(:t) ORDER BY c.relname"
        ),
        {"t": TABLE},
    ).all()
    return [(name, definition, constraint) for name, definition, constraint in rows]


def _is_unique(connection: sa.Connection, index: str) -> bool:
    return bool(
        connection.scalar(
            sa.text("SELECT indisunique FROM pg_index WHERE indexrelid = to_regclass(:i)"),
            {"i": index},
        )
    )


def _using(definition: str) -> str:
    """``btree (job_id)`` of ``CREATE INDEX name ON public.log_events USING btree (job_id)``."""
    found = re.search(r" USING (.+)$", definition)
    if found is None:
        raise SchemaError(f"cannot read the index definition {definition!r}")
    return found[1]


def _legacy_index(legacy: str, name: str) -> str:
    suffix = name.removeprefix(f"idx_{TABLE}_")
    return f"{legacy}_{suffix}_idx"[:_NAME_LIMIT]
