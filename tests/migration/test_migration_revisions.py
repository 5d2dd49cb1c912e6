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
from joblog.storage.dialects.pg_partitions import is_partition_name
from joblog.storage.schema import ID_COLLATION

MakeDatabase = Callable[[str], str]
ALL_TABLES = {
    "job_tracking",
    "job_steps",
    "log_events",
    "failover_jobs",
    "ingest_batches",
    "dashboard_sessions",
}


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


def _compared_on(dialect: str) -> Callable[..., bool]:
    """MariaDB has no partial index: there the running-holder rule is a unique index on
    a VIRTUAL column (TestRunningHolder checks it) that schema.py does not declare as a
    column. The (job_id, id) and (external_job_id, id) indexes exist on PostgreSQL only,
    the partial children index on PostgreSQL and SQLite. The partitions of log_events are
    its storage, not tables schema.py declares (TestPartitionedEvents checks them).
    Everything else is compared."""

    def compared(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        if kind == "index" and name == schema.JOB_NEWEST and dialect != "postgresql":
            return False
        if kind == "index" and name == schema.EXTERNAL_NEWEST and dialect != "postgresql":
            return False
        if kind == "index" and name == schema.CHILDREN and dialect == "mysql":
            return False
        if kind == "table" and reflected and name is not None and is_partition_name(name):
            return False  # a partition of log_events (PostgreSQL), not a table of its own
        return not (
            dialect == "mysql"
            and (
                (kind == "index" and name == schema.RUNNING_HOLDER)
                or (kind == "column" and name == schema.RUNNING_HOLDER_COLUMN)
            )
        )

    return compared


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
                opts={
                    "compare_type": True,
                    "compare_server_default": _server_default_differs,
                    "include_object": _compared_on(connection.dialect.name),
                },
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
        assert migrate.current(database_url) == migrate.head_revision() == "0008_partitioned_events"

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
        assert not {"ingest_batches", "dashboard_sessions"} & table_names(database_url)

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
        chain = (
            "0001_base",
            "0002_external_job_id",
            "0003_joblog",
            "0003a_adopted_origin",
            "0004_exact_ids",
            "0005_event_lookups",
            "0006_dashboard_sessions",
            "0007_serving_lookups",
            "0008_partitioned_events",
        )
        for revision in chain:
            migrate.upgrade(database_url, revision)
            assert migrate.current(database_url) == revision
        for revision in reversed(chain[:-1]):
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


class TestDashboardSessions:
    """0006: the dashboard's sessions table, added and removed without touching the rest."""

    def test_downgrade_removes_only_the_sessions_table(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "0005_event_lookups")
        assert table_names(database_url) - {"alembic_version"} == ALL_TABLES - {
            "dashboard_sessions"
        }
        migrate.upgrade(database_url)
        assert schema_diff(database_url) == []

    @pytest.mark.parametrize("server", ["postgresql", "mariadb"])
    def test_rerun_after_interruption_between_table_and_index(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        # MariaDB commits each DDL statement: a crash may leave the table without its index.
        database_url = make_database(server)
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            on = " ON dashboard_sessions" if server == "mariadb" else ""
            connection.exec_driver_sql(f"DROP INDEX idx_dashboard_sessions_expires_at{on}")
        engine.dispose()
        migrate.stamp(database_url, "0005_event_lookups")
        migrate.upgrade(database_url)
        assert migrate.current(database_url) == migrate.head_revision()
        assert schema_diff(database_url) == []


def _insert_job(connection: sa.Connection, job_id: str, external: str, **values: Any) -> None:
    row = {
        "id": job_id,
        "job_type": "failover",
        "operation": "live",
        "status": "running",
        "external_job_id": external,
        "percent_complete": 0,
        "created_at": sa.func.now(),
        **values,
    }
    connection.execute(schema.job_tracking.insert().values(row))


class TestExactIds:
    """0004: one open exclusive holder per external ID; exact ID comparison on MariaDB."""

    def test_existing_duplicate_holders_do_not_stop_the_upgrade(self, database_url: str) -> None:
        # What check-then-insert left behind: two running jobs with one external ID.
        migrate.upgrade(database_url, "0003_joblog")
        engine = sa.create_engine(database_url)
        try:
            with engine.begin() as connection:
                for job_id in ("dup-1", "dup-2"):
                    connection.execute(
                        sa.text(
                            "INSERT INTO job_tracking (id, job_type, operation, status,"
                            " external_job_id, percent_complete, created_at, cancel_requested)"
                            " VALUES (:id, 'failover', 'live', 'running', 'ext-dup', 0,"
                            " CURRENT_TIMESTAMP, :f)"
                        ),
                        {"id": job_id, "f": False},
                    )
            migrate.upgrade(database_url)
            with engine.connect() as connection:
                flags = connection.execute(
                    sa.select(schema.job_tracking.c.exclusive_external_id)
                ).scalars()
                assert list(flags) == [False, False]
        finally:
            engine.dispose()

    def test_one_open_exclusive_holder(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        try:
            with engine.begin() as connection:
                _insert_job(connection, "a", "ext", exclusive_external_id=True)
                # Not exclusive (policy "allow", or the origin's own rows): no limit.
                _insert_job(connection, "b", "ext", exclusive_external_id=False)
                # Ended: it no longer holds the ID.
                _insert_job(connection, "c", "ext", exclusive_external_id=True, status="failed")
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                _insert_job(connection, "d", "ext", exclusive_external_id=True, status="pending")
            with engine.begin() as connection:
                connection.execute(
                    schema.job_tracking.update()
                    .where(schema.job_tracking.c.id == "a")
                    .values(status="completed")
                )
                _insert_job(connection, "e", "ext", exclusive_external_id=True)
        finally:
            engine.dispose()

    def test_mariadb_compares_ids_exactly(self, make_database: MakeDatabase) -> None:
        database_url = make_database("mariadb")
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        try:
            with engine.begin() as connection:
                for job_id, external in (
                    ("1", "rs-vm-x"),
                    ("2", "rs-VM-X "),
                    ("3", "😀"),
                    ("4", "😈"),
                ):
                    _insert_job(connection, job_id, external, exclusive_external_id=True)
            with engine.connect() as connection:
                found = connection.execute(
                    sa.select(schema.job_tracking.c.id).where(
                        schema.job_tracking.c.external_job_id.in_(["rs-vm-x", "😀"])
                    )
                ).scalars()
                assert sorted(found) == ["1", "3"]
                collations = dict(
                    connection.execute(
                        sa.text(
                            "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLLATION_NAME"
                            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                            " AND COLUMN_NAME IN ('external_job_id', 'context_id', 'batch_key',"
                            " 'job_id', 'id')"
                        )
                    ).all()
                )
        finally:
            engine.dispose()
        exact = {name for name, collation in collations.items() if collation == ID_COLLATION}
        assert exact == {
            "job_tracking.external_job_id",
            "job_tracking.context_id",
            "log_events.external_job_id",
            "ingest_batches.batch_key",
            "failover_jobs.job_id",
        }

    def test_mariadb_running_holder_is_a_virtual_column(self, make_database: MakeDatabase) -> None:
        database_url = make_database("mariadb")
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as connection:
                extra = connection.execute(
                    sa.text(
                        "SELECT EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
                        " DATABASE() AND TABLE_NAME = 'job_tracking' AND COLUMN_NAME = :c"
                    ),
                    {"c": schema.RUNNING_HOLDER_COLUMN},
                ).scalar()
            indexes = sa.inspect(engine).get_indexes("job_tracking")
        finally:
            engine.dispose()
        assert extra == "VIRTUAL GENERATED"
        holder = next(index for index in indexes if index["name"] == schema.RUNNING_HOLDER)
        assert holder["unique"] and holder["column_names"] == [schema.RUNNING_HOLDER_COLUMN]

    def test_mariadb_upgrade_is_online(self, make_database: MakeDatabase) -> None:
        database_url = make_database("mariadb")
        migrate.upgrade(database_url, "0003a_adopted_origin")
        with captured_statements() as statements:
            # 0006 only creates a new, empty table: nothing there to be online about.
            migrate.upgrade(database_url, "0005_event_lookups")
        ddl = [s for s in statements if s.startswith(("ALTER", "CREATE"))]
        assert ddl
        copied = [s for s in ddl if "ALGORITHM=COPY" in s]
        # Only the small, pruned ingest_batches is copied (its primary key's collation).
        assert copied == [s for s in ddl if s.startswith("ALTER TABLE ingest_batches")]
        assert all("LOCK=SHARED" in s for s in copied)
        assert all("INPLACE" in s and "LOCK=NONE" in s for s in ddl if s not in copied)

    def test_mariadb_downgrade_restores_the_collation(self, make_database: MakeDatabase) -> None:
        database_url = make_database("mariadb")
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "0003a_adopted_origin")
        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as connection:
                collations = connection.execute(
                    sa.text(
                        "SELECT DISTINCT COLLATION_NAME FROM information_schema.COLUMNS"
                        " WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME = 'external_job_id'"
                    )
                ).scalars()
                assert ID_COLLATION not in set(collations)
        finally:
            engine.dispose()


def _index_names(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {str(index["name"]) for index in sa.inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


class TestServingLookups:
    """0007: the partial children index (PostgreSQL, SQLite) and (external_job_id, id)
    (PostgreSQL), built online and removed by the downgrade."""

    def test_upgrade_adds_the_indexes_where_they_belong(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        backend = sa.make_url(database_url).get_backend_name()
        jobs, events = (_index_names(database_url, t) for t in ("job_tracking", "log_events"))
        assert (schema.CHILDREN in jobs) is (backend != "mysql")
        assert (schema.EXTERNAL_NEWEST in events) is (backend == "postgresql")

    def test_downgrade_removes_them(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "0006_dashboard_sessions")
        assert schema.CHILDREN not in _index_names(database_url, "job_tracking")
        assert schema.EXTERNAL_NEWEST not in _index_names(database_url, "log_events")

    def test_postgresql_builds_them_concurrently(self, make_database: MakeDatabase) -> None:
        database_url = make_database("postgresql")
        migrate.upgrade(database_url, "0006_dashboard_sessions")
        with captured_statements() as statements:
            migrate.upgrade(database_url)
        built = [s for s in statements if s.startswith("CREATE INDEX CONCURRENTLY")]
        assert len(built) == 2
        assert any("WHERE parent_job_id IS NOT NULL" in s for s in built)

    @pytest.mark.parametrize("server", ["postgresql", "sqlite"])
    def test_rerun_after_interruption(self, server: str, make_database: MakeDatabase) -> None:
        # What a crash after the first index leaves: the index exists, the revision not.
        database_url = make_database(server)
        migrate.upgrade(database_url, "0006_dashboard_sessions")
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"CREATE INDEX {schema.CHILDREN} ON job_tracking (parent_job_id, created_at)"
                " WHERE parent_job_id IS NOT NULL"
            )
        engine.dispose()
        migrate.upgrade(database_url)
        assert schema_diff(database_url) == []

    def test_sqlite_children_lookup_uses_it_after_analyze(
        self, make_database: MakeDatabase
    ) -> None:
        # The planner trap: top-level jobs' NULL parents counted as one value held by all.
        from joblog.storage import queries

        database_url = make_database("sqlite")
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        try:
            with engine.begin() as connection:
                for n in range(200):
                    connection.execute(
                        schema.job_tracking.insert().values(
                            id=f"job-{n}",
                            job_type="t",
                            operation="o",
                            status="completed",
                            created_at=sa.func.current_timestamp(),
                        )
                    )
                connection.exec_driver_sql("ANALYZE")
            compiled = queries.CHILDREN_OF.compile(dialect=engine.dialect)
            with engine.connect() as connection:
                plan = connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + str(compiled), ("job-1",)
                ).fetchall()
        finally:
            engine.dispose()
        assert any(schema.CHILDREN in str(row[-1]) for row in plan), plan
