"""Revision 0008: a new PostgreSQL database gets log_events partitioned by ts; an existing
or adopted one keeps its plain table; the downgrade makes one plain table of every row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.storage import migrate, schema
from joblog.storage.dialects.pg_partitions import DEFAULT_PARTITION, partition_name
from joblog.storage.store import Store
from tests.migration import platform_vintages
from tests.migration.test_migration_revisions import schema_diff

MakeDatabase = Callable[[str], str]
DAY = timedelta(days=1)


@contextmanager
def connected(url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def shape(url: str) -> dict[str, Any]:
    """What makes log_events partitioned or not, read from the catalog."""
    with connected(url) as connection:
        kind = connection.scalar(
            sa.text("SELECT relkind FROM pg_class WHERE oid = 'log_events'::regclass")
        )
        key = connection.scalar(sa.text("SELECT pg_get_partkeydef('log_events'::regclass)"))
        partitions = set(
            connection.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'log_events'::regclass AND c.relkind = 'r'"
                )
            ).scalars()
        )
        inspector = sa.inspect(connection)
        primary_key = inspector.get_pk_constraint("log_events")
        indexes = {
            index["name"]: tuple(index["column_names"])
            for index in inspector.get_indexes("log_events")
        }
        foreign_keys = {
            (
                fk["name"],
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                fk["options"].get("ondelete"),
            )
            for fk in inspector.get_foreign_keys("log_events")
        }
        columns = [
            (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("log_events")
        ]
    return {
        "kind": kind,
        "key": key,
        "partitions": partitions,
        "primary_key": (primary_key["name"], tuple(primary_key["constrained_columns"])),
        "indexes": indexes,
        "foreign_keys": foreign_keys,
        "columns": columns,
    }


def add_events(url: str, *ages_in_days: float) -> None:
    store = Store(url, auto_migrate=False)
    try:
        now = utcnow()
        rows = [
            (None, None, None, "INFO", f"aged {age}", None, now - timedelta(days=age), None, None)
            for age in ages_in_days
        ]
        store.apply_batch([InsertEvents(rows)])
    finally:
        store.close()


def event_ids(url: str) -> list[int]:
    with connected(url) as connection:
        return list(connection.execute(sa.text("SELECT id FROM log_events ORDER BY id")).scalars())


@pytest.fixture
def pg_url(make_database: MakeDatabase) -> str:
    return make_database("postgresql")


class TestNewDatabase:
    def test_log_events_is_partitioned_by_day_with_a_default_partition(self, pg_url: str) -> None:
        migrate.upgrade(pg_url)
        found = shape(pg_url)
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        assert found["kind"] == "p" and found["key"] == "RANGE (ts)"
        assert found["primary_key"] == ("pk_log_events", ("id", "ts"))
        assert found["partitions"] == {
            DEFAULT_PARTITION,
            *(partition_name(today + n * DAY, DAY) for n in range(3)),
        }
        assert found["indexes"][schema.JOB_NEWEST] == ("job_id", "id")
        assert schema_diff(pg_url) == []

    def test_every_partition_has_the_job_index(self, pg_url: str) -> None:
        migrate.upgrade(pg_url)
        with connected(pg_url) as connection:
            covered = connection.execute(
                sa.text(
                    "SELECT c.relname, count(*) FROM pg_inherits p"
                    " JOIN pg_class c ON c.oid = p.inhrelid JOIN pg_index i ON i.indrelid = c.oid"
                    " WHERE p.inhparent = 'log_events'::regclass"
                    " AND pg_get_indexdef(i.indexrelid) LIKE '%(job_id, id)' GROUP BY c.relname"
                )
            ).all()
        assert {count for _name, count in covered} == {1}
        assert {name for name, _count in covered} == shape(pg_url)["partitions"]

    def test_schema_py_builds_the_same_table(self, make_database: MakeDatabase) -> None:
        migrated, created = make_database("postgresql"), make_database("postgresql")
        migrate.upgrade(migrated)
        store = Store(created, auto_migrate=False)
        try:
            store.create_tables()
        finally:
            store.close()
        assert shape(created) == shape(migrated)

    def test_the_offline_sql_partitions_it_too(self, pg_url: str) -> None:
        sql = migrate.upgrade_sql(pg_url)
        assert "PARTITION BY RANGE (ts)" in sql
        assert f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF log_events DEFAULT" in sql

    @pytest.mark.parametrize("other", ["sqlite", "mariadb"])
    def test_sqlite_and_mariadb_keep_one_table(
        self, other: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(other)
        migrate.upgrade(url)
        assert schema_diff(url) == []
        with connected(url) as connection:
            assert sa.inspect(connection).get_pk_constraint("log_events")[
                "constrained_columns"
            ] == ["id"]


class TestExistingDatabase:
    def test_an_upgraded_database_keeps_its_plain_table(self, pg_url: str) -> None:
        migrate.upgrade(pg_url, "0005_event_lookups")
        add_events(pg_url, 1, 2)
        before = event_ids(pg_url)
        migrate.upgrade(pg_url)
        found = shape(pg_url)
        assert found["kind"] == "r" and found["partitions"] == set()
        assert found["primary_key"] == ("pk_log_events", ("id",))
        assert event_ids(pg_url) == before
        assert schema_diff(pg_url) == []

    def test_an_adopted_database_keeps_the_platforms_table(self, pg_url: str) -> None:
        platform_vintages.build(pg_url, "c")
        migrate.upgrade(pg_url)
        assert migrate.current(pg_url) == migrate.head_revision()
        assert shape(pg_url)["kind"] == "r"


class TestDowngrade:
    def test_every_row_goes_into_one_plain_table(self, pg_url: str) -> None:
        migrate.upgrade(pg_url)
        add_events(pg_url, 0, 1, -1, 400, -400)  # partitions, and the default both ways
        before = event_ids(pg_url)
        migrate.downgrade(pg_url, "0005_event_lookups")
        found = shape(pg_url)
        assert found["kind"] == "r" and found["partitions"] == set()
        assert found["primary_key"] == ("pk_log_events", ("id",))
        assert event_ids(pg_url) == before
        with connected(pg_url) as connection:
            tables = set(sa.inspect(connection).get_table_names())
        assert not {name for name in tables if name.startswith("log_events_")}
        # The ids go on from the same sequence.
        migrate.upgrade(pg_url)  # not a new database now: stays plain
        assert shape(pg_url)["kind"] == "r"
        add_events(pg_url, 0)
        assert event_ids(pg_url)[-1] > max(before)

    def test_the_downgraded_table_is_what_0005_built(self, make_database: MakeDatabase) -> None:
        partitioned, plain = make_database("postgresql"), make_database("postgresql")
        migrate.upgrade(partitioned)
        migrate.downgrade(partitioned, "0005_event_lookups")
        migrate.upgrade(plain, "0005_event_lookups")
        assert shape(partitioned) == shape(plain)
