"""PostgreSQL: ``log_events`` range-partitioned by ``ts``, and what the housekeeper does with it.

The layout (see docs/OPERATIONS.md):

* ``log_events`` is ``PARTITION BY RANGE (ts)`` with primary key ``(id, ts)`` (PostgreSQL
  wants the partition key in every unique constraint; ``id`` still comes from one
  sequence). Every index of the table is a partitioned index, so each partition has
  ``(job_id, id)``, ``(ts)``, ... of its own.
* One partition per interval (a day unless chosen otherwise), contiguous, aligned to the
  interval since the epoch (daily: UTC midnight), named ``log_events_p20260105`` (or
  ``..._0600`` when they do not start at midnight). The interval is not stored anywhere: it
  is the width of the newest partition, so changing it (``joblog db partition --interval``)
  is one partition of the new width.
* ``log_events_default`` takes any row no partition covers (a timestamp far in the past or
  future, or written while no housekeeper ran), so no insert ever fails for a missing
  partition. The housekeeper creates partitions ahead of time; a partition created for a
  range the default already holds rows of takes those rows over.
* A table converted by ``joblog db partition`` keeps its old self as the partition
  ``log_events_until_<date>`` (``FROM (MINVALUE)``), see :mod:`.pg_convert`.

Retention drops a partition whose whole range is older than the cutoff. Events of pending or
running jobs in it are never lost: in the transaction that detaches the partition they are
copied back into ``log_events`` (ids unchanged; the range being no partition's any more,
they land in the default partition, where the row-by-row prune removes them once their
job has ended and they are old). A partition holding more than :data:`MAX_MOVED` of them
(a long job that logged a lot back then) is kept whole instead, its other events with it,
and dropped by a later round once the job has ended: the lock of the drop stays short.
Partitions are created by ``ATTACH PARTITION`` (SHARE UPDATE
EXCLUSIVE on ``log_events``: reads and writes go on); detaching one needs a moment of
ACCESS EXCLUSIVE (``DETACH ... CONCURRENTLY`` is not allowed beside a default partition),
taken with a short ``lock_timeout`` (:data:`LOCK_TIMEOUT`) so that a long query delays the
drop to the next round instead of stalling every writer behind the lock queue, and so that
a writer waiting on the DDL while the DDL waits on it never becomes a deadlock's victim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from joblog.exceptions import ConfigError
from joblog.model import OPEN_JOB_STATUSES

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_PARTITION",
    "EVENT_PARTITIONS",
    "LOCK_TIMEOUT",
    "DropReport",
    "EventPartitions",
    "Partition",
    "PartitionReport",
    "check_interval",
    "floor_to",
    "is_partition_name",
    "partition_name",
]

TABLE = "log_events"
DEFAULT_PARTITION = "log_events_default"
DEFAULT_INTERVAL = timedelta(days=1)
#: How long a partition change waits for each lock before giving up (until the next round,
#: or the next attempt). Attaching or detaching a partition locks log_events, then
#: job_tracking and job_steps (their foreign keys); a writer may hold one of those and
#: wait for another. Three waits of this length end before PostgreSQL's deadlock_timeout
#: (1 s by default) would pick a victim, so in such a cycle the DDL gives up, not the
#: writer.
LOCK_TIMEOUT = "250ms"
#: At most this many events of open jobs are moved out of a partition being dropped
#: (under the lock of the drop); a partition holding more is kept whole until they end.
MAX_MOVED = 10_000
#: Never create more than this many partitions in one round (a long-stopped housekeeper
#: with a short interval); the rest of the gap stays in the default partition.
MAX_CREATED_PER_ROUND = 400
_EPOCH = datetime(1970, 1, 1)
_BOUND = re.compile(r"^FOR VALUES FROM \((.+)\) TO \((.+)\)$")
_PARTITION_NAME = re.compile(r"^log_events_(p\d{8}(_\d{4})?|until_\d{8}(_\d{4})?|default)$")
_LOCK_NOT_AVAILABLE = frozenset({"55P03", "40P01"})  # lock_timeout, deadlock
_OPEN_JOBS = (
    "SELECT id FROM job_tracking WHERE status IN ("
    + ", ".join(f"'{status}'" for status in OPEN_JOB_STATUSES)
    + ")"
)


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of ``log_events``: ``[lower, upper)``; None is MINVALUE / MAXVALUE."""

    name: str
    lower: datetime | None
    upper: datetime | None
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class PartitionReport:
    """What making partitions ahead did."""

    interval: timedelta
    created: tuple[str, ...] = ()
    #: Rows the default partition held for a new partition's range, moved into it.
    moved_rows: int = 0
    #: Partitions not created this round because a lock was not granted in time.
    deferred: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DropReport:
    """What dropping old partitions did."""

    dropped: tuple[str, ...] = ()
    #: Events removed with the dropped partitions (counted under lock, so exact).
    rows: int = 0
    #: Events of pending or running jobs taken out of dropped partitions into the default.
    moved: int = 0
    #: Old enough, but holding more events of open jobs than are moved: kept whole.
    kept: tuple[Partition, ...] = ()
    #: Old enough, but a lock was not granted in time: left whole to the next round.
    deferred: tuple[Partition, ...] = ()


def check_interval(interval: timedelta) -> timedelta:
    """``interval`` if it is a whole number of hours from 1 hour to 366 days."""
    seconds = interval.total_seconds()
    if seconds < 3600 or seconds > 366 * 86400 or seconds % 3600:
        raise ConfigError("the partition interval must be whole hours, from 1h to 366d")
    return interval


def floor_to(moment: datetime, interval: timedelta) -> datetime:
    """The start of the interval-wide slot (counted from the epoch) that holds ``moment``."""
    return moment - (moment - _EPOCH) % interval


def partition_name(lower: datetime, interval: timedelta, prefix: str = "p") -> str:
    """``log_events_p20260105`` (``..._0600`` when a partition starts off midnight)."""
    whole_days = interval % timedelta(days=1) == timedelta(0)
    if whole_days and (lower.hour, lower.minute) == (0, 0):
        return f"{TABLE}_{prefix}{lower:%Y%m%d}"
    return f"{TABLE}_{prefix}{lower:%Y%m%d_%H%M}"


def is_partition_name(name: str) -> bool:
    """Whether ``name`` is one joblog gives a partition of ``log_events``."""
    return _PARTITION_NAME.match(name) is not None


def horizon(now: datetime, interval: timedelta) -> datetime:
    """Partitions are made ahead until one ends after this."""
    return now + max(2 * interval, timedelta(days=1))


def literal(moment: datetime) -> str:
    """A timestamp as a SQL literal (DDL takes no parameters; the value is ours)."""
    return f"'{moment.isoformat(sep=' ')}'"


def fresh_partitions(
    now: datetime, interval: timedelta = DEFAULT_INTERVAL, parent: str = TABLE
) -> list[str]:
    """DDL for a new, empty partitioned table: its default partition and the partitions
    from the current slot to the horizon (``CREATE TABLE ... PARTITION OF``: nothing uses
    the table yet, so its lock costs nothing)."""
    statements = [f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {parent} DEFAULT"]
    lower = floor_to(now, interval)
    while lower < horizon(now, interval):
        upper = lower + interval
        statements.append(
            f"CREATE TABLE {partition_name(lower, interval)} PARTITION OF {parent}"
            f" FOR VALUES FROM ({literal(lower)}) TO ({literal(upper)})"
        )
        lower = upper
    return statements


def _bound(text: str) -> datetime | None:
    text = text.strip()
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(text.strip("'"))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def lock_not_granted(error: BaseException) -> bool:
    """Whether ``error`` is a lock timeout or a deadlock (try again next round)."""
    orig = getattr(error, "orig", None)
    return bool(getattr(orig, "sqlstate", None) in _LOCK_NOT_AVAILABLE)


class EventPartitions:
    """Reads and changes the partitions of ``log_events`` (PostgreSQL only)."""

    def is_partitioned(self, connection: sa.Connection) -> bool:
        kind = connection.scalar(
            sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": TABLE}
        )
        return bool(kind == "p")

    def layout(self, connection: sa.Connection) -> list[Partition] | None:
        """The partitions, oldest first (the default last); None: not partitioned."""
        if not self.is_partitioned(connection):
            return None
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
            ),
            {"t": TABLE},
        ).all()
        partitions = []
        for name, bound in rows:
            if bound == "DEFAULT":
                partitions.append(Partition(name, None, None, is_default=True))
                continue
            found = _BOUND.match(bound)
            if found is None:  # not a range bound joblog knows; leave it be
                continue
            partitions.append(Partition(name, _bound(found[1]), _bound(found[2])))
        return sorted(partitions, key=_order)

    def interval(self, partitions: Sequence[Partition]) -> timedelta:
        """The width of the newest bounded partition (the interval in force)."""
        bounded = [p for p in partitions if p.lower is not None and p.upper is not None]
        if not bounded:
            return DEFAULT_INTERVAL
        newest = max(bounded, key=lambda p: p.upper or _EPOCH)
        assert newest.lower is not None and newest.upper is not None
        return newest.upper - newest.lower

    def columns(self, connection: sa.Connection, table: str = TABLE) -> list[str]:
        return list(
            connection.execute(
                sa.text(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t)"
                    " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                ),
                {"t": table},
            ).scalars()
        )

    # -- ahead ------------------------------------------------------------------------

    def make_ahead(
        self,
        engine: sa.Engine,
        *,
        interval: timedelta | None = None,
        now: datetime | None = None,
    ) -> PartitionReport | None:
        """Create partitions until one ends past the horizon (None: not partitioned).

        ``interval`` changes the width of the partitions made from now on (at least one
        is made, so that the newest partition records it)."""
        now = now or _now()
        with engine.connect() as connection:
            partitions = self.layout(connection)
            columns = self.columns(connection)
        if partitions is None:
            return None
        current = self.interval(partitions)
        width = check_interval(interval) if interval is not None else current
        bounded = [p for p in partitions if not p.is_default]
        if any(p.upper is None for p in bounded):
            return PartitionReport(width)  # someone's MAXVALUE partition: nothing fits after
        uppers = [p.upper for p in bounded if p.upper is not None]
        start = max(uppers) if uppers else floor_to(now, width)
        if (horizon(now, width) - start) / width > MAX_CREATED_PER_ROUND:
            start = floor_to(now, width)
        end = horizon(now, width)
        if width != current and start >= end:
            end = start + width  # one partition of the new width records it
        return self._make(engine, partitions, columns, start, end, width)

    def cover(
        self, engine: sa.Engine, lower: datetime, upper: datetime, interval: timedelta | None = None
    ) -> PartitionReport | None:
        """Create the partitions of ``[lower, upper)`` (slots of ``interval``, by default the
        one in force) that no partition covers yet, e.g. before loading older events."""
        with engine.connect() as connection:
            partitions = self.layout(connection)
            columns = self.columns(connection)
        if partitions is None:
            return None
        width = check_interval(interval) if interval is not None else self.interval(partitions)
        return self._make(engine, partitions, columns, floor_to(lower, width), upper, width)

    def _make(
        self,
        engine: sa.Engine,
        partitions: Sequence[Partition],
        columns: Sequence[str],
        start: datetime,
        end: datetime,
        width: timedelta,
    ) -> PartitionReport:
        """Partitions of ``width`` from ``start`` until one ends at or after ``end``,
        skipping any slot that an existing partition overlaps."""
        taken = [p for p in partitions if not p.is_default]
        has_default = len(taken) < len(partitions)
        created: list[str] = []
        deferred: list[str] = []
        moved = 0
        while start < end:
            upper = start + width
            name = partition_name(start, width)
            if any(_overlaps(p, start, upper) for p in taken):
                start = upper
                continue
            try:
                moved += self._attach(engine, name, start, upper, columns, has_default)
            except sa.exc.OperationalError as error:
                if not lock_not_granted(error):
                    raise
                deferred.append(name)
                break  # contiguous or nothing: the next round starts here again
            created.append(name)
            start = upper
        return PartitionReport(width, tuple(created), moved, tuple(deferred))

    def _attach(
        self,
        engine: sa.Engine,
        name: str,
        lower: datetime,
        upper: datetime,
        columns: Sequence[str],
        has_default: bool,
    ) -> int:
        """Create and attach the partition ``[lower, upper)``; returns the rows it took
        over from the default partition."""
        in_range = f"ts >= {literal(lower)} AND ts < {literal(upper)}"
        listed = ", ".join(columns)
        moved = 0
        with engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            connection.exec_driver_sql(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING CONSTRAINTS)")
            if has_default and connection.scalar(
                sa.text(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {in_range})")
            ):
                # ATTACH would refuse: the default holds rows of this range. Move them,
                # with the default locked so that none arrives in between.
                connection.exec_driver_sql(
                    f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"
                )
                moved = connection.exec_driver_sql(
                    f"INSERT INTO {name} ({listed})"
                    f" SELECT {listed} FROM {DEFAULT_PARTITION} WHERE {in_range}"
                ).rowcount
                connection.exec_driver_sql(f"DELETE FROM {DEFAULT_PARTITION} WHERE {in_range}")
            connection.exec_driver_sql(
                f"ALTER TABLE {TABLE} ATTACH PARTITION {name}"
                f" FOR VALUES FROM ({literal(lower)}) TO ({literal(upper)})"
            )
        return max(moved, 0)

    # -- retention --------------------------------------------------------------------

    def drop_older(self, engine: sa.Engine, cutoff: datetime) -> DropReport | None:
        """Drop every partition whose whole range is before ``cutoff`` (None: not
        partitioned). Events of pending or running jobs in it are moved to the default
        partition first, in the same transaction (readers never miss them); a partition
        with more than :data:`MAX_MOVED` of them is kept whole instead."""
        with engine.connect() as connection:
            partitions = self.layout(connection)
            columns = self.columns(connection)
        if partitions is None:
            return None
        dropped: list[str] = []
        kept: list[Partition] = []
        deferred: list[Partition] = []
        rows = moved = 0
        for partition in partitions:
            if partition.is_default or partition.upper is None or partition.upper > cutoff:
                continue
            try:
                result = self._drop(engine, partition.name, columns)
            except sa.exc.OperationalError as error:
                if not lock_not_granted(error):
                    raise
                deferred.append(partition)
                continue
            if result is None:
                kept.append(partition)
            else:
                dropped.append(partition.name)
                rows += result[0]
                moved += result[1]
        return DropReport(tuple(dropped), rows, moved, tuple(kept), tuple(deferred))

    def _drop(self, engine: sa.Engine, name: str, columns: Sequence[str]) -> tuple[int, int] | None:
        """Detach and drop one partition in one transaction: (events removed, events of
        open jobs moved), or None (and nothing changed) when it holds too many of those.
        Its rows are counted under a SHARE lock on the partition alone (writers of old
        partitions wait, readers do not); ``log_events`` is locked only from the detach to
        the commit."""
        open_rows = f"FROM {name} WHERE job_id IN ({_OPEN_JOBS})"
        listed = ", ".join(columns)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            connection.exec_driver_sql(f"LOCK TABLE {name} IN SHARE MODE")
            held = int(connection.scalar(sa.text(f"SELECT count(*) {open_rows}")) or 0)
            if held > MAX_MOVED:
                return None
            total = int(connection.scalar(sa.text(f"SELECT count(*) FROM {name}")) or 0)
            connection.exec_driver_sql(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
            moved = 0
            if held:
                # The range is no partition's now: these rows land in the default one.
                moved = connection.exec_driver_sql(
                    f"INSERT INTO {TABLE} ({listed}) SELECT {listed} {open_rows}"
                ).rowcount
            connection.exec_driver_sql(f"DROP TABLE {name}")
        return total - moved, moved


def _overlaps(partition: Partition, lower: datetime, upper: datetime) -> bool:
    starts_before_upper = partition.lower is None or partition.lower < upper
    ends_after_lower = partition.upper is None or partition.upper > lower
    return starts_before_upper and ends_after_lower


def _order(partition: Partition) -> tuple[int, datetime]:
    if partition.is_default:
        return (2, _EPOCH)
    return (0 if partition.lower is None else 1, partition.lower or _EPOCH)


EVENT_PARTITIONS = EventPartitions()
