"""PostgreSQL's partitioned log_events: partitions ahead, retention by dropping them, every
writer and reader on it, online index changes, and converting a plain table while in use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

import joblog
from joblog import JobStatus
from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.cli import main
from joblog.exceptions import ConfigError, SchemaError
from joblog.resolve import Resolver
from joblog.storage import migrate
from joblog.storage.dialects import pg_partitions
from joblog.storage.dialects.pg_convert import OVERFLOW, SHELL, Conversion, ConversionReport
from joblog.storage.dialects.pg_partitions import (
    DEFAULT_PARTITION,
    EVENT_PARTITIONS,
    PartitionReport,
    floor_to,
    partition_name,
)
from joblog.storage.producer import IncomingEvent, ProducerWrites
from joblog.storage.store import Store
from tests.support.db import events

MakeDatabase = Callable[[str], str]
DAY = timedelta(days=1)


@pytest.fixture
def store(make_database: MakeDatabase) -> Iterator[Store]:
    """A new PostgreSQL database: log_events partitioned (revision 0008)."""
    store = Store(make_database("postgresql"))
    yield store
    store.close()


@pytest.fixture
def plain(make_database: MakeDatabase) -> Iterator[Store]:
    """An older PostgreSQL database upgraded to head: log_events one plain table."""
    url = make_database("postgresql")
    migrate.upgrade(url, "0005_event_lookups")
    migrate.upgrade(url)
    store = Store(url)
    yield store
    store.close()


def today() -> datetime:
    return floor_to(utcnow(), DAY)


def add_days(store: Store, first: datetime, count: int) -> list[str]:
    """Daily partitions from ``first`` (before any row of theirs is stored)."""
    names = []
    with store.engine.begin() as connection:
        for n in range(count):
            lower = first + n * DAY
            name = partition_name(lower, DAY)
            connection.exec_driver_sql(
                f"CREATE TABLE {name} PARTITION OF log_events FOR VALUES FROM"
                f" ('{lower}') TO ('{lower + DAY}')"
            )
            names.append(name)
    return names


def log(store: Store, ts: datetime, count: int = 1, job_id: str | None = None) -> None:
    rows = [(job_id, None, None, "INFO", f"at {ts}", None, ts, None, None)] * count
    store.apply_batch([InsertEvents(rows)])


def where(store: Store) -> dict[str, int]:
    """Rows per partition."""
    with store.engine.connect() as connection:
        return dict(
            connection.execute(
                sa.text("SELECT tableoid::regclass::text, count(*) FROM log_events GROUP BY 1")
            ).all()
        )


def partitions(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        found = EVENT_PARTITIONS.layout(connection)
    assert found is not None
    return {partition.name for partition in found}


def start(store: Store, status: JobStatus = JobStatus.RUNNING) -> str:
    producer = ProducerWrites(store, attach=Resolver(store).attach)
    job = producer.start_job("failover", "live")
    if status is not JobStatus.RUNNING:
        producer.update_job(job.id, status=status)
    return job.id


class TestPartitionsAhead:
    def test_they_reach_the_horizon_once(self, store: Store) -> None:
        later = utcnow() + 5 * DAY
        made = EVENT_PARTITIONS.make_ahead(store.engine, now=later)
        assert made is not None
        assert made.created == tuple(partition_name(today() + n * DAY, DAY) for n in range(3, 8))
        again = EVENT_PARTITIONS.make_ahead(store.engine, now=later)
        assert again is not None and again.created == ()

    def test_rows_the_default_held_move_into_their_new_partition(self, store: Store) -> None:
        ahead = today() + 5 * DAY + timedelta(hours=3)
        log(store, ahead, count=3)
        assert where(store) == {DEFAULT_PARTITION: 3}
        made = EVENT_PARTITIONS.make_ahead(store.engine, now=utcnow() + 4 * DAY)
        assert made is not None and made.moved_rows == 3
        assert where(store) == {partition_name(today() + 5 * DAY, DAY): 3}

    def test_an_interval_change_is_one_partition_of_the_new_width(self, store: Store) -> None:
        made = store.housekeeping.make_partitions(timedelta(hours=6))
        assert made is not None and len(made.created) == 1
        with store.engine.connect() as connection:
            layout = EVENT_PARTITIONS.layout(connection)
        assert layout is not None
        assert EVENT_PARTITIONS.interval(layout) == timedelta(hours=6)
        later = EVENT_PARTITIONS.make_ahead(store.engine, now=utcnow() + DAY)
        assert later is not None and later.interval == timedelta(hours=6)
        assert all(name.endswith(("_0000", "_0600", "_1200", "_1800")) for name in later.created)

    @pytest.mark.parametrize("interval", [timedelta(minutes=30), timedelta(hours=1.5), 400 * DAY])
    def test_a_bad_interval_is_refused(self, store: Store, interval: timedelta) -> None:
        with pytest.raises(ConfigError, match="whole hours"):
            store.housekeeping.make_partitions(interval)

    def test_a_row_no_partition_covers_lands_in_the_default(self, store: Store) -> None:
        log(store, datetime(1971, 1, 1))
        log(store, datetime(9999, 12, 31, 23, 59))
        assert where(store) == {DEFAULT_PARTITION: 2}

    @pytest.mark.parametrize("other_backend", ["sqlite", "mariadb"])
    def test_sqlite_and_mariadb_have_none(
        self, other_backend: str, make_database: MakeDatabase
    ) -> None:
        other = Store(make_database(other_backend))
        try:
            made = other.housekeeping.run_partitions()
            assert made.ran and made.partitions is None
        finally:
            other.close()


class TestRetentionByPartition:
    def test_old_partitions_are_dropped_whole_and_counted(self, store: Store) -> None:
        old = add_days(store, today() - 40 * DAY, 12)  # 40 to 29 days ago
        for n in range(12):
            log(store, today() - (40 - n) * DAY + timedelta(hours=12), count=10)
        log(store, today() - 90 * DAY, count=4)  # in the default partition
        report = store.housekeeping.prune(timedelta(days=30))
        cutoff_day = floor_to(utcnow() - timedelta(days=30), DAY)
        gone = [name for name in old if name < partition_name(cutoff_day, DAY)]
        assert report.partitions_dropped == tuple(gone)
        # Whole partitions, the old rows of the default one, and those before the cutoff in
        # the partition holding it.
        noon = cutoff_day + timedelta(hours=12)
        boundary = 10 if noon < utcnow() - timedelta(days=30) else 0
        assert report.events == 10 * len(gone) + 4 + boundary
        assert not set(gone) & partitions(store)
        assert len(events(store)) == 120 + 4 - report.events

    def test_events_of_a_running_job_survive_their_partition(self, store: Store) -> None:
        (old,) = add_days(store, today() - 40 * DAY, 1)
        running, finished = start(store), start(store, JobStatus.COMPLETED)
        log(store, today() - 40 * DAY, count=3, job_id=running)
        log(store, today() - 40 * DAY, count=5, job_id=finished)
        kept = [row["id"] for row in events(store)][:3]
        report = store.housekeeping.prune(timedelta(days=30))
        assert report.partitions_dropped == (old,) and report.events == 5
        assert [row["id"] for row in events(store)] == kept
        assert where(store) == {DEFAULT_PARTITION: 3}
        ProducerWrites(store, attach=Resolver(store).attach).update_job(
            running, status=JobStatus.COMPLETED
        )
        assert store.housekeeping.prune(timedelta(days=30)).events == 3

    def test_a_partition_with_many_events_of_a_running_job_is_kept_whole(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(pg_partitions, "MAX_MOVED", 2)
        (old,) = add_days(store, today() - 40 * DAY, 1)
        running = start(store)
        log(store, today() - 40 * DAY, count=3, job_id=running)
        log(store, today() - 40 * DAY, count=5)
        report = store.housekeeping.prune(timedelta(days=30))
        assert report.partitions_kept == (old,)
        assert (report.events, report.partitions_dropped) == (0, ())
        assert where(store) == {old: 8}  # not emptied row by row either

    def test_a_partition_that_cannot_be_locked_now_waits_for_the_next_round(
        self, store: Store
    ) -> None:
        (old,) = add_days(store, today() - 40 * DAY, 1)
        log(store, today() - 40 * DAY, count=4)
        with store.engine.connect() as reader, reader.begin():
            reader.execute(sa.text("SELECT count(*) FROM log_events"))  # holds ACCESS SHARE
            report = store.housekeeping.prune(timedelta(days=30))
            assert report.partitions_kept == (old,) and report.events == 0
        assert where(store) == {old: 4}
        report = store.housekeeping.prune(timedelta(days=30))
        assert report.partitions_dropped == (old,) and report.events == 4

    def test_a_prune_by_level_deletes_rows_and_drops_nothing(self, store: Store) -> None:
        (old,) = add_days(store, today() - 40 * DAY, 1)
        store.apply_batch(
            [
                InsertEvents(
                    [
                        (None, None, None, level, "m", None, today() - 40 * DAY, None, None)
                        for level in ("DEBUG", "DEBUG", "ERROR")
                    ]
                )
            ]
        )
        report = store.housekeeping.prune(timedelta(days=30), max_level=joblog.Level.DEBUG)
        assert (report.events, report.partitions_dropped) == (2, ())
        assert where(store) == {old: 1}


class TestWritersAndReaders:
    def test_a_batch_key_stores_a_batch_once(self, store: Store) -> None:
        rows = [(None, None, None, "INFO", "keyed", None, utcnow(), None, None)] * 3
        assert store.apply_batch([InsertEvents(rows)], batch_key="k-1")
        assert not store.apply_batch([InsertEvents(rows)], batch_key="k-1")
        assert len(events(store)) == 3

    def test_http_ingest_and_the_tracker_store_their_events(self, store: Store) -> None:
        job_id = start(store)
        ProducerWrites(store, attach=Resolver(store).attach).ingest_events(
            "b-1",
            [
                IncomingEvent(level="INFO", message="ingested", ts=utcnow(), job_id=job_id),
                IncomingEvent(level="INFO", message="old", ts=datetime(1990, 1, 1)),
            ],
        )
        tracker = joblog.Tracker(store.url.render_as_string(hide_password=False))
        tracker.install_logging()
        try:
            with tracker.job("backup", "nightly"):
                logging.getLogger("partitioned").warning("from the tracker")
            assert tracker.flush(30)
        finally:
            tracker.close()
        assert {row["message"] for row in events(store)} >= {"ingested", "old", "from the tracker"}

    def test_a_jobs_newest_events_come_from_the_job_index_of_each_partition(
        self, store: Store
    ) -> None:
        add_days(store, today() - 3 * DAY, 3)
        for day in range(4):
            ts = today() - day * DAY + timedelta(hours=1)
            log(store, ts, count=5000)
        job_id = start(store)
        log(store, today() - 2 * DAY, count=3, job_id=job_id)
        with store.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE log_events")
            plan = "\n".join(
                connection.execute(
                    sa.text(
                        "EXPLAIN SELECT id FROM log_events WHERE job_id = :j ORDER BY id DESC"
                        " LIMIT 50"
                    ),
                    {"j": job_id},
                ).scalars()
            )
        # Each partition holding rows is read through an index of its own on job_id (no
        # walk of the primary key, no scan); the empty ones cost nothing either way.
        populated = [partition_name(today() - day * DAY, DAY) for day in range(4)]
        for partition in populated:
            line = next(line for line in plan.splitlines() if f" on {partition} " in line)
            assert "Index" in line and f"{partition}_job_id" in line, plan


class TestKeyRangeForm:
    """A job's events by (key, id): the plain condition on a partitioned table (the
    planner's row estimate of row comparisons made it sort every partition's matches),
    row comparisons on a plain one (else it walked the primary key)."""

    @staticmethod
    def compiled(store: Store) -> str:
        from joblog.storage.queries import events_of
        from joblog.storage.schema import log_events

        statement = sa.select(log_events.c.id).where(
            events_of(log_events.c.external_job_id, "old-long-job")
        )
        return str(statement.compile(dialect=store.reads.engine.dialect))

    def test_a_partitioned_table_gets_the_plain_condition(self, store: Store) -> None:
        assert "(log_events.external_job_id, log_events.id) >" not in self.compiled(store)
        assert "log_events.external_job_id = " in self.compiled(store)

    def test_a_plain_table_gets_row_comparisons(self, plain: Store) -> None:
        assert "(log_events.external_job_id, log_events.id) >" in self.compiled(plain)

    def test_an_old_external_id_is_read_from_each_partitions_index(self, store: Store) -> None:
        from joblog.storage.queries import by_key, events_of
        from joblog.storage.schema import log_events

        old = today() - 30 * DAY  # before the first partition: in the default one
        with store.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO log_events (level, message, ts, external_job_id)"
                    " SELECT 'INFO', 'old', :ts, 'old-long-job' FROM generate_series(1, 3000)"
                ),
                {"ts": old + timedelta(hours=1)},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO log_events (level, message, ts, external_job_id)"
                    " SELECT 'INFO', 'new', :ts, 'ext-' || (g % 100)"
                    " FROM generate_series(1, 30000) g"
                ),
                {"ts": old + 2 * DAY},
            )
            connection.exec_driver_sql("ANALYZE log_events")
        key = log_events.c.external_job_id
        statement = (
            sa.select(log_events.c.id)
            .where(events_of(key, "old-long-job"))
            .order_by(*by_key(key, newest_first=True))
            .limit(1)
        )
        sql = str(
            statement.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
        )
        with store.engine.connect() as connection:
            plan = "\n".join(connection.exec_driver_sql("EXPLAIN " + sql).scalars())
        # The newest one comes from merging each partition's (key, id) index: nothing
        # sorts the old ID's 3,000 events.
        assert "Merge Append" in plan and "Sort" not in plan.replace("Sort Key", ""), plan

    def test_a_prepared_summary_read_of_an_old_job_merges_too(self, store: Store) -> None:
        # psycopg prepares a statement on its fifth run; PostgreSQL then may use a generic
        # plan, which knows no parameter's value: it must not sort the old job's events.
        from joblog.storage.queries import RECENT_EVENTS

        old = today() - 30 * DAY
        job_id = start(store)
        with store.engine.begin() as connection:
            for sql, ts in (
                ("SELECT :j, 'INFO', 'old', :ts FROM generate_series(1, 3000)", old),
                (
                    "SELECT NULL, 'INFO', 'new', :ts FROM generate_series(1, 30000)",
                    old + 2 * DAY,
                ),
            ):
                connection.execute(
                    sa.text("INSERT INTO log_events (job_id, level, message, ts) " + sql),
                    {"j": job_id, "ts": ts},
                )
            connection.exec_driver_sql("ANALYZE log_events")
        sql = str(RECENT_EVENTS.compile(dialect=store.engine.dialect))
        sql = sql.replace("%(job_id)s", "$1").replace("%(limit)s", "$2")
        assert "%(" not in sql, sql  # no other parameter: open bounds are left out
        with store.engine.connect() as connection:
            connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            connection.exec_driver_sql("PREPARE recent AS " + sql)
            plan = "\n".join(
                connection.exec_driver_sql(f"EXPLAIN EXECUTE recent('{job_id}', 20)").scalars()
            )
        assert "Merge Append" in plan and "Sort" not in plan.replace("Sort Key", ""), plan


class TestOnlineIndexChanges:
    def test_an_index_is_built_per_partition_and_attached(self, store: Store) -> None:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection)
            operations = Operations(context)
            with context.begin_transaction():
                for _again in range(2):  # may be run again
                    store.backend.create_index_online(
                        operations, "idx_test_level", "log_events", ["level"]
                    )
            valid = connection.scalar(
                sa.text(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_test_level'::regclass"
                )
            )
            children = connection.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = 'idx_test_level'::regclass"
                )
            )
            assert valid and children == len(partitions(store))
            with context.begin_transaction():
                store.backend.drop_index_online(operations, "idx_test_level", "log_events")
            assert connection.scalar(sa.text("SELECT to_regclass('idx_test_level')")) is None


class TestConversion:
    def test_a_plain_table_becomes_partitioned_and_keeps_every_row(self, plain: Store) -> None:
        for age in (0, 1, 10, 100):
            log(plain, utcnow() - age * DAY, count=5)
        log(plain, utcnow() + 30 * DAY)  # dated after the boundary: held aside, then back
        before = [row["id"] for row in events(plain)]
        outcome = plain.housekeeping.partition_events()
        assert isinstance(outcome, ConversionReport)
        assert outcome.diverted == 1
        assert [row["id"] for row in events(plain)] == before
        found = where(plain)
        assert found[outcome.legacy] == 20 and found[DEFAULT_PARTITION] == 1
        with plain.engine.connect() as connection:
            assert EVENT_PARTITIONS.is_partitioned(connection)
        assert not {OVERFLOW, SHELL} & table_names(plain)
        log(plain, utcnow())
        assert max(row["id"] for row in events(plain)) > max(before)

    def test_the_old_table_is_dropped_once_all_of_it_is_old(self, plain: Store) -> None:
        log(plain, utcnow() - 100 * DAY, count=3)
        log(plain, utcnow(), count=2)
        outcome = plain.housekeeping.partition_events()
        assert isinstance(outcome, ConversionReport)
        report = plain.housekeeping.prune(timedelta(days=30))
        assert (report.events, report.partitions_dropped) == (3, ())  # row by row for now
        # A cutoff past the boundary (as the days go by): the old table goes whole.
        report = plain.housekeeping.prune(timedelta(days=-3))
        assert outcome.legacy in report.partitions_dropped and report.events == 2
        assert outcome.legacy not in partitions(plain)

    def test_a_failed_conversion_is_undone(
        self, plain: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        log(plain, utcnow(), count=2)
        log(plain, utcnow() + 30 * DAY)

        def broken(*args: Any) -> Any:
            raise RuntimeError("the swap broke")

        monkeypatch.setattr(Conversion, "_swap", broken)
        with pytest.raises(SchemaError, match="failed at the swap step and was undone"):
            plain.housekeeping.partition_events()
        assert len(events(plain)) == 3
        assert not {OVERFLOW, SHELL} & table_names(plain)
        with plain.engine.connect() as connection:
            assert not EVENT_PARTITIONS.is_partitioned(connection)
            assert not connection.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'log_events'::regclass"
                    " AND NOT tgisinternal"
                )
            )
        monkeypatch.undo()
        assert isinstance(plain.housekeeping.partition_events(), ConversionReport)

    def test_an_interrupted_conversion_is_undone_by_the_next_run(self, plain: Store) -> None:
        log(plain, utcnow() + 30 * DAY)
        boundary = floor_to(utcnow() + 2 * DAY, DAY)
        crashed = Conversion(plain.engine, DAY)
        crashed._divert(boundary)  # what a crash leaves
        crashed._check(boundary)
        assert len(events(plain)) == 0  # the future row is held aside
        assert isinstance(plain.housekeeping.partition_events(), ConversionReport)
        assert len(events(plain)) == 1

    def test_on_a_partitioned_table_it_makes_partitions_ahead(self, store: Store) -> None:
        made = store.housekeeping.partition_events(timedelta(hours=12))
        assert isinstance(made, PartitionReport) and made.interval == timedelta(hours=12)

    def test_an_adopted_database_is_refused(self, plain: Store) -> None:
        with plain.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE joblog_adoption (vintage VARCHAR(8))")
        with pytest.raises(SchemaError, match="adopted from the platform"):
            plain.housekeeping.partition_events()

    def test_the_cli_reports_the_swap(self, plain: Store) -> None:
        url = plain.url.render_as_string(hide_password=False)
        result = CliRunner().invoke(main, ["db", "partition", "--url", url])
        assert result.exit_code == 0, result.output
        assert "writers waited at most" in result.output
        again = CliRunner().invoke(main, ["db", "partition", "--url", url, "--interval", "6h"])
        assert again.exit_code == 0, again.output
        assert "log_events is partitioned (every 6:00:00)" in again.output

    @pytest.mark.parametrize("other", ["sqlite", "mariadb"])
    def test_the_cli_says_other_backends_have_no_partitions(
        self, other: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(other)
        migrate.upgrade(url)
        result = CliRunner().invoke(main, ["db", "partition", "--url", url])
        assert result.exit_code == 1
        assert "PostgreSQL only" in result.output

    def test_a_bad_interval_is_a_clear_error(self, plain: Store) -> None:
        url = plain.url.render_as_string(hide_password=False)
        result = CliRunner().invoke(main, ["db", "partition", "--url", url, "--interval", "90m"])
        assert result.exit_code == 1 and "whole hours" in result.output


def table_names(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())
