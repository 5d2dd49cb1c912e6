"""Adopting the older system's database, and ensure_schema's decisions on open."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from joblog.exceptions import SchemaError
from joblog.storage import adoption, migrate
from tests.migration.older_system import (
    OLD_COLUMNS,
    create_older_system,
    dump_old_columns,
    insert_realistic_rows,
)
from tests.migration.test_migration_revisions import schema_diff


@pytest.fixture
def older_system_url(database_url: str) -> str:
    """An older-system database with realistic rows and no alembic_version."""
    create_older_system(database_url)
    insert_realistic_rows(database_url)
    return database_url


def column_values(url: str, table: str, columns: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.text(f"SELECT {columns} FROM {table} ORDER BY id")
            return [tuple(row) for row in connection.execute(query)]
    finally:
        engine.dispose()


class TestDetect:
    def test_empty(self, database_url: str) -> None:
        engine = sa.create_engine(database_url)
        assert migrate.detect(engine) == "empty"
        engine.dispose()

    def test_older_system(self, older_system_url: str) -> None:
        engine = sa.create_engine(older_system_url)
        assert migrate.detect(engine) == "older-system"
        engine.dispose()

    def test_managed(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        assert migrate.detect(engine) == "managed"
        engine.dispose()


class TestAdoption:
    def test_keeps_every_row_and_value(self, older_system_url: str) -> None:
        before = dump_old_columns(older_system_url)
        assert len(before["log_events"]) >= 100
        assert len(before["failover_jobs"]) == 4
        migrate.upgrade(older_system_url)
        assert migrate.current(older_system_url) == migrate.head_revision()
        assert dump_old_columns(older_system_url) == before

    def test_new_columns_are_null_or_default(self, older_system_url: str) -> None:
        migrate.upgrade(older_system_url)
        log_rows = column_values(older_system_url, "log_events", "external_job_id")
        assert {row[0] for row in log_rows} == {None}
        job_rows = column_values(
            older_system_url,
            "job_tracking",
            "external_job_id, planned_steps, cancel_requested, heartbeat_at",
        )
        assert set(job_rows) == {(None, None, False, None)}
        step_rows = column_values(older_system_url, "job_steps", "weight, allow_failure")
        assert set(step_rows) == {(1.0, False)}

    def test_unicode_survives(self, older_system_url: str) -> None:
        migrate.upgrade(older_system_url)
        names = {
            row[0] for row in column_values(older_system_url, "failover_jobs", "source_vm_name")
        }
        assert {"db-ÄÖÜ", "数据库"} <= names
        errors = {
            row[0] for row in column_values(older_system_url, "failover_jobs", "error_message")
        }
        assert "VM не найдена" in errors

    def test_downgrade_to_base_revision_keeps_rows(self, older_system_url: str) -> None:
        before = dump_old_columns(older_system_url)
        migrate.upgrade(older_system_url)
        migrate.downgrade(older_system_url, "0001_base")
        assert migrate.current(older_system_url) == "0001_base"
        assert dump_old_columns(older_system_url) == before

    def test_refuses_a_database_missing_a_column(self, database_url: str) -> None:
        create_older_system(database_url)
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE failover_jobs DROP COLUMN vm_id")
        engine.dispose()
        with pytest.raises(SchemaError, match=r"missing failover_jobs\.vm_id"):
            migrate.upgrade(database_url)
        assert migrate.current(database_url) is None

    def test_refuses_a_database_missing_a_table(self, database_url: str) -> None:
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE job_tracking (id VARCHAR(64) PRIMARY KEY)")
        engine.dispose()
        with pytest.raises(SchemaError, match="missing") as raised:
            migrate.upgrade(database_url)
        for table in ("table job_steps", "table log_events", "table failover_jobs"):
            assert table in str(raised.value)
        assert "job_tracking.created_at" in str(raised.value)

    def test_refuses_a_hand_applied_seed_change(self, older_system_url: str) -> None:
        before = dump_old_columns(older_system_url)
        engine = sa.create_engine(older_system_url)
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "ALTER TABLE log_events ADD COLUMN external_job_id VARCHAR(255) NULL"
            )
        engine.dispose()
        with pytest.raises(SchemaError, match=r"log_events\.external_job_id"):
            migrate.upgrade(older_system_url)
        assert dump_old_columns(older_system_url) == before


@pytest.fixture
def seed_named_url(database_url: str) -> str:
    """An older-system database whose indexes carry the seed plan's names, with rows."""
    create_older_system(database_url, seed_names=True)
    insert_realistic_rows(database_url)
    return database_url


def index_names(url: str) -> dict[str, set[str]]:
    """Names of each old table's indexes and unique constraints, as reflected."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: {str(index["name"]) for index in inspector.get_indexes(table)}
            | {str(unique["name"]) for unique in inspector.get_unique_constraints(table)}
            for table in OLD_COLUMNS
        }
    finally:
        engine.dispose()


class TestIndexNames:
    def test_fixture_holds_the_seed_names(self, seed_named_url: str) -> None:
        # Without this the tests below would pass on a database with nothing to rename.
        assert {"job_id", "step_id"} <= index_names(seed_named_url)["log_events"]

    def test_adopted_schema_equals_schema_py(self, seed_named_url: str) -> None:
        migrate.upgrade(seed_named_url)
        assert schema_diff(seed_named_url) == []

    def test_renaming_keeps_every_row(self, seed_named_url: str) -> None:
        before = dump_old_columns(seed_named_url)
        migrate.upgrade(seed_named_url)
        assert dump_old_columns(seed_named_url) == before

    def test_adoption_to_base_revision_has_its_names(self, seed_named_url: str) -> None:
        migrate.upgrade(seed_named_url, migrate.BASE_REVISION)
        declared = {d.name for d in adoption.base_indexes() if d.table == "log_events"}
        assert index_names(seed_named_url)["log_events"] == declared

    def test_base_indexes_are_what_revision_0001_builds(self, database_url: str) -> None:
        # base_indexes() is derived from schema.py; it must name exactly 0001's indexes.
        migrate.upgrade(database_url, migrate.BASE_REVISION)
        expected: dict[str, set[str]] = {table: set() for table in OLD_COLUMNS}
        for declared in adoption.base_indexes():
            expected[declared.table].add(declared.name)
        assert index_names(database_url) == expected

    def test_nothing_to_rename_on_declared_names(self, database_url: str) -> None:
        migrate.upgrade(database_url, migrate.BASE_REVISION)
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            assert adoption.normalise_index_names(connection) == []
        engine.dispose()


class TestRenameStatements:
    """The DDL per server; the old-MariaDB form is checked here, not on a server."""

    LOG_JOB_ID = adoption.DeclaredIndex("log_events", "idx_log_events_job_id", ("job_id",), False)
    UNIQUE = adoption.DeclaredIndex("job_steps", "uq_job_steps_job_id_seq", ("job_id", "seq"), True)

    @staticmethod
    def mysql_dialect(version: tuple[int, ...], mariadb: bool) -> sa.Dialect:
        dialect = mysql.dialect()
        dialect.server_version_info = version
        dialect.is_mariadb = mariadb
        return dialect

    def test_postgresql(self) -> None:
        statements = adoption.rename_statements(postgresql.dialect(), self.LOG_JOB_ID, "job_id")
        assert statements == ["ALTER INDEX job_id RENAME TO idx_log_events_job_id"]

    def test_mariadb_renames_in_place(self) -> None:
        dialect = self.mysql_dialect((10, 11, 19), mariadb=True)
        statements = adoption.rename_statements(dialect, self.LOG_JOB_ID, "job_id")
        assert statements == ["ALTER TABLE log_events RENAME INDEX job_id TO idx_log_events_job_id"]

    def test_mariadb_before_10_5_2_drops_and_adds_in_one_statement(self) -> None:
        dialect = self.mysql_dialect((10, 5, 1), mariadb=True)
        statements = adoption.rename_statements(dialect, self.UNIQUE, "job_id")
        assert statements == [
            "ALTER TABLE job_steps DROP INDEX job_id,"
            " ADD UNIQUE INDEX uq_job_steps_job_id_seq (job_id, seq)"
        ]

    def test_sqlite_drops_and_creates(self) -> None:
        statements = adoption.rename_statements(sqlite.dialect(), self.UNIQUE, "job_id")
        assert statements == [
            "DROP INDEX job_id",
            "CREATE UNIQUE INDEX uq_job_steps_job_id_seq ON job_steps (job_id, seq)",
        ]

    def test_names_are_quoted(self) -> None:
        statements = adoption.rename_statements(postgresql.dialect(), self.LOG_JOB_ID, "Job Id")
        assert statements == ['ALTER INDEX "Job Id" RENAME TO idx_log_events_job_id']


class TestEnsureSchema:
    def test_empty_database_is_upgraded_to_head(self, database_url: str) -> None:
        engine = sa.create_engine(database_url)
        migrate.ensure_schema(engine)
        engine.dispose()
        assert migrate.current(database_url) == migrate.head_revision()

    def test_at_head_costs_one_query(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        migrate.ensure_schema(engine)
        engine.dispose()
        assert statements == ["SELECT version_num FROM alembic_version"]

    def test_behind_head_raises(self, database_url: str) -> None:
        migrate.upgrade(database_url, "0002_external_job_id")
        engine = sa.create_engine(database_url)
        with pytest.raises(SchemaError, match="joblog db upgrade --url") as raised:
            migrate.ensure_schema(engine)
        engine.dispose()
        assert "0002_external_job_id" in str(raised.value)
        assert migrate.current(database_url) == "0002_external_job_id"

    def test_older_system_raises_without_touching_it(self, older_system_url: str) -> None:
        before = dump_old_columns(older_system_url)
        engine = sa.create_engine(older_system_url)
        with pytest.raises(SchemaError, match="joblog db upgrade"):
            migrate.ensure_schema(engine)
        engine.dispose()
        assert migrate.current(older_system_url) is None
        assert dump_old_columns(older_system_url) == before

    def test_after_full_downgrade_counts_as_empty(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "base")
        engine = sa.create_engine(database_url)
        migrate.ensure_schema(engine)
        engine.dispose()
        assert migrate.current(database_url) == migrate.head_revision()

    def test_two_openers_at_once_both_succeed(self, database_url: str) -> None:
        engines = [sa.create_engine(database_url) for _ in range(3)]
        barrier = threading.Barrier(len(engines))
        errors: list[BaseException] = []

        def open_database(engine: sa.Engine) -> None:
            barrier.wait()
            try:
                migrate.ensure_schema(engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_database, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for engine in engines:
            engine.dispose()
        assert errors == []
        assert migrate.current(database_url) == migrate.head_revision()


def test_old_columns_cover_the_base_revision() -> None:
    # The adoption check and the test fixture must describe the same older system.
    assert adoption.OLDER_SYSTEM_COLUMNS == OLD_COLUMNS


class TestEnsureSchemaUnknownRevision:
    def test_newer_revision_is_named(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
        with pytest.raises(SchemaError, match=r"0099_future.*does not know"):
            migrate.ensure_schema(engine)
        engine.dispose()
