"""Change announcements: what a live stream needs to know that a followed job moved.

On PostgreSQL every committed write transaction that touches jobs sends, inside the
transaction (so delivered at commit, and never for a rollback), one ``NOTIFY`` per job
on :data:`CHANNEL`, with the payload ``"<kind> <newest event id> <key>"``: kind ``j``
for a job ID (the job itself, the job of a changed step, and its parent, whose live view
lists children), ``x`` for an external ID whose events have no job row. One statement per
transaction, and PostgreSQL folds identical payloads of one transaction into one.

On every backend :func:`change_marks` is the shared watcher's single query: one row per
followed job (status, progress, error, end and cancel request, and the job's state
columns of :func:`joblog.storage.queries.job_state`: newest event ID, steps, children),
compared tick to tick to learn which jobs changed without reading their rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from joblog._ops import InsertEvents, InsertJob, InsertStep, Op, UpdateJob, UpdateStep
from joblog.storage import queries, schema
from joblog.storage.reader import Reader

__all__ = [
    "CHANNEL",
    "Listener",
    "Touched",
    "announce",
    "change_marks",
    "parse_payload",
]

#: The LISTEN/NOTIFY channel joblog's servers listen on.
CHANNEL = "joblog_changes"

jobs = schema.job_tracking
steps = schema.job_steps
events = schema.log_events

_ANNOUNCE = sa.text(
    f"""
SELECT pg_notify(:channel, 'j ' || coalesce(
    (SELECT max(e.id) FROM {events.name} e WHERE e.job_id = k.id), 0) || ' ' || k.id)
FROM (
    SELECT unnest(CAST(:job_ids AS text[])) AS id
    UNION SELECT s.job_id FROM {steps.name} s WHERE s.id = ANY(CAST(:step_ids AS bigint[]))
    UNION SELECT p.parent_job_id FROM {jobs.name} p
        WHERE p.id = ANY(CAST(:job_ids AS text[])) AND p.parent_job_id IS NOT NULL
) AS k
UNION ALL
SELECT pg_notify(:channel, 'x ' || coalesce(
    (SELECT max(e.id) FROM {events.name} e WHERE e.external_job_id = x.id), 0) || ' ' || x.id)
FROM unnest(CAST(:external_ids AS text[])) AS x(id)
"""
)


@dataclass(slots=True)
class Touched:
    """The jobs, steps and events-only external IDs one transaction changed."""

    job_ids: set[str] = field(default_factory=set)
    step_ids: set[int] = field(default_factory=set)
    external_ids: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.job_ids or self.step_ids or self.external_ids)

    def add_event_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Event rows in :data:`joblog._ops.EVENT_COLUMNS` order."""
        for row in rows:
            if row[0] is not None:
                self.job_ids.add(row[0])
            elif row[2] is not None:
                self.external_ids.add(row[2])

    @classmethod
    def of_event_rows(cls, rows: Iterable[Sequence[Any]]) -> Touched:
        touched = cls()
        touched.add_event_rows(rows)
        return touched

    @classmethod
    def by_ops(cls, ops: Iterable[Op]) -> Touched:
        touched = cls()
        for op in ops:
            if isinstance(op, InsertEvents):
                touched.add_event_rows(op.rows)
            elif isinstance(op, InsertJob):
                touched.job_ids.add(str(op.values["id"]))
            elif isinstance(op, UpdateJob):
                touched.job_ids.add(op.job_id)
            elif isinstance(op, InsertStep):
                touched.job_ids.add(str(op.values["job_id"]))
            elif isinstance(op, UpdateStep):
                touched.step_ids.add(op.step_id)
        return touched


def announce(conn: sa.Connection, touched: Touched) -> None:
    """Queue the change notifications of ``touched`` in ``conn``'s transaction
    (PostgreSQL; other backends have no NOTIFY and rely on the shared watcher)."""
    if conn.dialect.name != "postgresql" or not touched:
        return
    conn.execute(
        _ANNOUNCE,
        {
            "channel": CHANNEL,
            "job_ids": sorted(touched.job_ids),
            "step_ids": sorted(touched.step_ids),
            "external_ids": sorted(touched.external_ids),
        },
    )


def parse_payload(payload: str) -> tuple[str, int, str] | None:
    """(kind, newest event id, key) of a notification; None for one not joblog's."""
    kind, _, rest = payload.partition(" ")
    newest, _, key = rest.partition(" ")
    if kind not in ("j", "x") or not newest.isdigit() or not key:
        return None
    return kind, int(newest), key


#: A key the watcher follows: ("j", job id) or ("x", events-only external ID).
Key = tuple[str, str]


def _job_marks(job_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(
        jobs.c.id.label("key"),
        jobs.c.status,
        jobs.c.percent_complete,
        jobs.c.error_message,
        jobs.c.completed_at,
        jobs.c.cancel_requested,
        *queries.job_state(jobs),
    ).where(jobs.c.id.in_(list(job_ids)))


def _external_marks(external_ids: Sequence[str]) -> sa.Select[Any]:
    return (
        sa.select(events.c.external_job_id.label("key"), sa.func.max(events.c.id).label("newest"))
        .where(events.c.external_job_id.in_(list(external_ids)))
        .group_by(events.c.external_job_id)
    )


def change_marks(reads: Reader, keys: Iterable[Key]) -> dict[Key, tuple[Any, ...]]:
    """A comparable mark per followed key that exists (one query; two when events-only
    IDs are followed too). A key missing from the answer has no rows yet."""
    job_ids = sorted(key for kind, key in keys if kind == "j")
    external_ids = sorted(key for kind, key in keys if kind == "x")
    marks: dict[Key, tuple[Any, ...]] = {}
    if job_ids:
        for row in reads.rows(_job_marks(job_ids)):
            values = tuple(row.values())
            marks[("j", str(values[0]))] = values[1:]
    if external_ids:
        for row in reads.rows(_external_marks(external_ids)):
            marks[("x", str(row["key"]))] = (row["newest"],)
    return marks


class Listener:
    """One ``LISTEN`` connection (PostgreSQL, psycopg 3) on its own, outside any pool."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._raw: Any = None

    def connect(self) -> None:
        """Open the connection and start listening (raises the driver's error)."""
        self.close()
        raw = self._engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            driver.autocommit = True
            driver.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            raw.invalidate()
            raise
        self._raw = raw

    def payloads(self, timeout: float) -> Iterator[str]:
        """The payloads that arrive within ``timeout`` seconds (raises when the link broke)."""
        driver = self._raw.driver_connection
        for notification in driver.notifies(timeout=timeout, stop_after=1000):
            yield notification.payload

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            with contextlib.suppress(Exception):  # already broken: nothing to release
                raw.invalidate()
