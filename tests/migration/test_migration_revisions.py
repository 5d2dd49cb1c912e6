"""The revisions themselves: upgrade builds exactly schema.py, downgrade undoes it, and
0002 is an online change where the engine allows one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from joblog.storage import migrate, schema

MakeDatabase = Callable[[str], str]
ALL_TABLES = {"job_tracking", "job_steps", "log_events", "failover_jobs", "ingest_batches"}


def _server_default_differs(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    # MariaDB stores BOOLEAN as TINYINT(1) and reflects a `false` default as '0'; the
    # two mean the same. Anything else goes to Alembic's own comparison (None).
    if (
        context.dialect.name == "mysql"
        and isinstance(metadata_column.type, sa.Boolean)
        and rendered_metadata_default in ("false", "'false'")
        and (inspected_default or "").strip("'") == "0"
    ):
        return False
    return None


def schema_diff(url: str) -> list[Any]:
    """What Alembic autogenerate would change to make the database equal schema.py.

    Types and server defaults are compared. MariaDB reflects JSON columns as LONGTEXT;
    Alembic already treats the two as synonyms there, and test_json_columns_are_checked
    proves the JSON check that makes the LONGTEXT a JSON column.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "compare_server_default": _server_default_differs},
            )
            return list(compare_metadata(context, schema.metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@contextmanager
def captured_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the block runs."""
    statements: list[str] = []

    def capture(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(sa.Engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", capture)


class TestUpgradeFromEmpty:
    def test_upgrade_head_reaches_head(self, database_url: str) -> None:
        assert migrate.current(database_url) is None
        migrate.upgrade(database_url)
        assert migrate.current(database_url) == migrate.head_revision() == "0003a_adopted_origin"

    def test_upgraded_schema_equals_schema_py(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        assert schema_diff(database_url) == []

    def test_diff_notices_a_missing_index(self, database_url: str) -> None:
        # Guards the comparison itself: a real difference must show up.
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            if connection.dialect.name == "mysql":
                connection.exec_driver_sql("DROP INDEX idx_log_events_ts ON log_events")
            else:
                connection.exec_driver_sql("DROP INDEX idx_log_events_ts")
        engine.dispose()
        diff = schema_diff(database_url)
        assert [d[0] for d in diff] == ["add_index"]
        assert diff[0][1].name == "idx_log_events_ts"

    def test_mariadb_json_columns_are_checked(self, make_database: MakeDatabase) -> None:
        # JSON is native on PostgreSQL and SQLite; MariaDB's is LONGTEXT with a CHECK.
        database_url = make_database("mariadb")
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as connection:
                checks = connection.execute(
                    sa.text(
                        "SELECT table_name, constraint_name, check_clause"
                        " FROM information_schema.check_constraints"
                        " WHERE constraint_schema = DATABASE()"
                    )
                ).all()
        finally:
            engine.dispose()
        checked = {(table, name) for table, name, clause in checks if "json_valid" in clause}
        assert checked == {
            ("job_tracking", "metadata"),
            ("job_tracking", "planned_steps"),
            ("log_events", "attrs"),
        }


class TestDowngrade:
    def test_downgrade_to_base_revision_removes_joblog_additions(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "0001_base")
        assert migrate.current(database_url) == "0001_base"
        engine = sa.create_engine(database_url)
        inspector = sa.inspect(engine)
        log_columns = {c["name"] for c in inspector.get_columns("log_events")}
        job_columns = {c["name"] for c in inspector.get_columns("job_tracking")}
        step_columns = {c["name"] for c in inspector.get_columns("job_steps")}
        log_indexes = {i["name"] for i in inspector.get_indexes("log_events")}
        engine.dispose()
        assert "external_job_id" not in log_columns
        assert not {"external_job_id", "planned_steps", "cancel_requested", "heartbeat_at"} & (
            job_columns
        )
        assert not {"weight", "allow_failure"} & step_columns
        assert log_indexes == {"idx_log_events_job_id", "idx_log_events_step_id"}
        assert "ingest_batches" not in table_names(database_url)

    def test_downgrade_to_base_leaves_no_tables_or_types(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "base")
        assert migrate.current(database_url) is None
        assert table_names(database_url) - {"alembic_version"} == set()
        engine = sa.create_engine(database_url)
        try:
            if engine.dialect.name == "postgresql":
                with engine.connect() as connection:
                    types = connection.execute(
                        sa.text("SELECT typname FROM pg_type WHERE typtype = 'e'")
                    ).scalars()
                    assert set(types) == set()
        finally:
            engine.dispose()

    def test_upgrade_again_after_full_downgrade(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "0001_base")
        migrate.downgrade(database_url, "base")
        migrate.upgrade(database_url)
        assert migrate.current(database_url) == migrate.head_revision()
        assert table_names(database_url) >= ALL_TABLES
        assert schema_diff(database_url) == []

    def test_step_by_step_round_trip(self, database_url: str) -> None:
        chain = ("0001_base", "0002_external_job_id", "0003_joblog", "0003a_adopted_origin")
        for revision in chain:
            migrate.upgrade(database_url, revision)
            assert migrate.current(database_url) == revision
        for revision in ("0003_joblog", "0002_external_job_id", "0001_base"):
            migrate.downgrade(database_url, revision)
            assert migrate.current(database_url) == revision


class TestOnlineExternalJobId:
    """0002 must not lock log_events: it is the big, busy table."""

    def test_mariadb_uses_inplace_without_lock(self, make_database: MakeDatabase) -> None:
        database_url = make_database("mariadb")
        migrate.upgrade(database_url, "0001_base")
        with captured_statements() as statements:
            migrate.upgrade(database_url, "0002_external_job_id")
        ddl = [s for s in statements if "external_job_id" in s and "alembic_version" not in s]
        assert len(ddl) == 2
        assert ddl[0].startswith("ALTER TABLE log_events ADD COLUMN")
        assert ddl[0].endswith("ALGORITHM=INPLACE, LOCK=NONE")
        assert ddl[1].startswith("CREATE INDEX IF NOT EXISTS idx_log_events_external_job_id")
        assert ddl[1].endswith("ALGORITHM=INPLACE LOCK=NONE")
        assert migrate.current(database_url) == "0002_external_job_id"

    def test_mariadb_downgrade_uses_inplace_without_lock(self, make_database: MakeDatabase) -> None:
        database_url = make_database("mariadb")
        migrate.upgrade(database_url, "0002_external_job_id")
        with captured_statements() as statements:
            migrate.downgrade(database_url, "0001_base")
        ddl = [s for s in statements if "external_job_id" in s and "alembic_version" not in s]
        assert len(ddl) == 1
        assert ddl[0].endswith("ALGORITHM=INPLACE, LOCK=NONE")

    def test_postgresql_builds_the_index_concurrently(self, make_database: MakeDatabase) -> None:
        database_url = make_database("postgresql")
        migrate.upgrade(database_url, "0001_base")
        with captured_statements() as statements:
            migrate.upgrade(database_url, "0002_external_job_id")
        # CONCURRENTLY fails inside a transaction block, so success proves autocommit.
        assert any(s.startswith("CREATE INDEX CONCURRENTLY idx_log_events_") for s in statements)
        with captured_statements() as statements:
            migrate.downgrade(database_url, "0001_base")
        assert any(s.startswith("DROP INDEX CONCURRENTLY") for s in statements)

    @pytest.mark.parametrize("server", ["postgresql", "mariadb"])
    def test_rerun_after_interruption_between_column_and_index(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        # Not SQLite: there the whole upgrade is one transaction, so it cannot stop half-way.
        database_url = make_database(server)
        migrate.upgrade(database_url, "0001_base")
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            # What a crash after 0002's first, committed statement leaves behind.
            connection.exec_driver_sql(
                "ALTER TABLE log_events ADD COLUMN external_job_id VARCHAR(255) NULL"
            )
        engine.dispose()
        migrate.upgrade(database_url)
        assert schema_diff(database_url) == []
