"""Adopting the platform's database in each of its three real vintages (MariaDB, and the
same shapes on PostgreSQL): nothing of the origin's changes, joblog and the Go tracker
both keep writing, and every way back (a failed adoption, a downgrade) leaves the
origin as it was."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import joblog
from joblog.cli.db import db
from joblog.exceptions import SchemaError
from joblog.resolve import Resolver
from joblog.storage import migrate, schema, widening
from joblog.storage.backfill import backfill
from joblog.storage.store import Store
from tests.migration import platform_vintages as platform

MakeDatabase = Callable[[str], str]
SERVERS = ("mariadb", "postgresql")


@pytest.fixture(params=[(s, v) for s in SERVERS for v in platform.VINTAGE_NAMES], ids=str)
def vintage_url(request: pytest.FixtureRequest, make_database: MakeDatabase) -> Iterator[str]:
    """The platform's database in one vintage, filled by the Go tracker, not adopted."""
    server, vintage = request.param
    url = make_database(server)
    platform.build(url, vintage)
    request.node.vintage = vintage
    yield url


def vintage_of(request: pytest.FixtureRequest) -> str:
    return str(request.node.vintage)


@pytest.fixture(params=SERVERS)
def vintage_a_url(request: pytest.FixtureRequest, make_database: MakeDatabase) -> str:
    url = make_database(str(request.param))
    platform.build(url, "a")
    return url


def execute(url: str, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(statement), params or {})
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_origin_kept(before: dict[str, Any], url: str, vintage: str) -> None:
    """Every original value and index unchanged; types only where joblog widens."""
    after = platform.fingerprint(url, before["columns"])
    assert after["rows"] == before["rows"]
    assert before["indexes"] <= after["indexes"]
    assert set(before["tables"]) <= set(after["tables"])
    changed = {key for key, value in before["types"].items() if after["types"][key] != value}
    expected = set(platform.WIDENED[vintage])
    if url.startswith("mysql"):
        # 0004: the looked-up IDs compare exactly (a collation; values unchanged).
        expected |= {key for key in platform.EXACT_ID_COLUMNS if key in before["types"]}
    assert changed == expected
    lost = before["constraints"] - after["constraints"]
    # What widening drops: PostgreSQL's CHECK on job_type (MariaDB's ENUM is the type).
    assert {(row[0], row[1]) for row in lost} <= {("job_tracking", "job_tracking_job_type_check")}


def assert_origin_restored(before: dict[str, Any], url: str) -> None:
    """The database is exactly the platform's again (a restored PostgreSQL CHECK is the
    same constraint, which PostgreSQL prints a little differently)."""
    back = platform.fingerprint(url)
    for key in ("tables", "columns", "rows", "indexes", "types"):
        assert back[key] == before[key], key
    named = {row[:3] for row in before["constraints"]}
    assert {row[:3] for row in back["constraints"]} == named


class TestRecognition:
    def test_detects_the_platform(self, vintage_url: str) -> None:
        engine = sa.create_engine(vintage_url)
        try:
            assert migrate.detect(engine) == "platform"
        finally:
            engine.dispose()

    def test_check_names_vintage_stamp_and_revisions_and_changes_nothing(
        self, vintage_url: str, request: pytest.FixtureRequest
    ) -> None:
        vintage = vintage_of(request)
        before = platform.fingerprint(vintage_url)
        result = CliRunner().invoke(db, ["upgrade", "--check", "--url", vintage_url])
        assert result.exit_code == 0, result.output
        stamp = "0002_external_job_id" if vintage == "c" else "0001_base"
        assert f"vintage {vintage} (" in result.output
        assert f"apply: stamp {stamp}, " in result.output
        assert "0003a_adopted_origin" in result.output
        assert "widen job_tracking.job_type" in result.output
        assert ("add job_tracking.context_id" in result.output) is (vintage == "a")
        assert "nothing was changed" in result.output
        assert platform.fingerprint(vintage_url) == before

    def test_upgrade_says_which_vintage_it_adopted(
        self, vintage_url: str, request: pytest.FixtureRequest
    ) -> None:
        result = CliRunner().invoke(db, ["upgrade", "--url", vintage_url])
        assert result.exit_code == 0, result.output
        assert f"adopted: platform database, vintage {vintage_of(request)} (" in result.output
        assert f"after: {migrate.head_revision()}" in result.output


class TestAdoptionKeepsTheOrigin:
    def test_every_value_and_index_survives_upgrade_and_backfill(
        self, vintage_url: str, request: pytest.FixtureRequest
    ) -> None:
        before = platform.fingerprint(vintage_url)
        migrate.upgrade(vintage_url)
        backfill(vintage_url)
        assert migrate.current(vintage_url) == migrate.head_revision()
        assert_origin_kept(before, vintage_url, vintage_of(request))

    def test_existing_columns_are_recognised_not_added(
        self, vintage_url: str, request: pytest.FixtureRequest
    ) -> None:
        before = platform.fingerprint(vintage_url)
        migrate.upgrade(vintage_url)
        after = platform.fingerprint(vintage_url)
        added = {key for key in after["types"] if key not in before["types"]}
        joblog_columns = {
            ("job_tracking", "planned_steps"),
            ("job_tracking", "cancel_requested"),
            ("job_tracking", "heartbeat_at"),
            ("job_steps", "weight"),
            ("job_steps", "allow_failure"),
            ("job_tracking", "exclusive_external_id"),
            ("log_events", "trace_id"),  # 0005: OpenTelemetry
            ("log_events", "span_id"),
        }
        if vintage_url.startswith("mysql"):
            joblog_columns.add(("job_tracking", "running_external_id"))  # 0004's VIRTUAL
        vintage = vintage_of(request)
        if vintage == "a":
            joblog_columns |= {("job_tracking", "context_id"), ("job_tracking", "external_job_id")}
        if vintage != "c":
            joblog_columns.add(("log_events", "external_job_id"))
        assert {key for key in added if key[0] in platform.JOB_TABLES} == joblog_columns
        new_indexes = {
            (t, cols)
            for t, name, cols, _u in after["indexes"] - before["indexes"]
            if name != schema.RUNNING_HOLDER  # 0004's partial unique index: another purpose
        }
        # Where the origin indexes a column already (idx_external_job, ...), joblog adds none.
        covered = {(t, cols) for t, _name, cols, _u in before["indexes"]}
        assert not new_indexes & covered

    def test_go_rows_written_after_adoption_are_valid_and_readable(
        self, vintage_url: str, request: pytest.FixtureRequest
    ) -> None:
        vintage = vintage_of(request)
        migrate.upgrade(vintage_url)
        engine = sa.create_engine(vintage_url)
        with engine.begin() as connection:
            written = platform.insert_go_rows(connection, vintage, tag="go2")
        engine.dispose()
        store = Store(vintage_url)
        try:
            parent = store.reads.get_job(written[0])
            assert parent is not None
            assert parent.status is joblog.JobStatus.RUNNING
            assert parent.heartbeat_at is None and parent.planned_steps == ()
            assert parent.cancel_requested is False
            assert parent.metadata == {
                "vm_name": "pgtest2",
                "failover_type": "live",
                "vm_context_id": f"{platform.CONTEXT_ID}go2",
            }
            steps = store.reads.steps_of(written[0])
            assert [s.name for s in steps] == [
                "validate-vm",
                "snapshot volumes",
                "create destination VM",
            ]
            assert {s.weight for s in steps} == {1.0}
            summary = Resolver(store).resolve(written[0])
            assert summary.progress.completed_steps == 2
            assert summary.recent_events, "the Go tracker's events are read back"
            if vintage != "a":
                by_gui_id = Resolver(store).resolve(f"{platform.GUI_ID}go2")
                assert by_gui_id.job.id == written[0]
        finally:
            store.close()

    def test_the_reaper_leaves_the_go_trackers_running_jobs_alone(self, vintage_a_url: str) -> None:
        migrate.upgrade(vintage_a_url)
        store = Store(vintage_a_url)
        try:
            assert store.housekeeping.reap_abandoned(1) == []
            parent = store.reads.get_job(platform.PARENT)
            assert parent is not None and parent.status is joblog.JobStatus.RUNNING
        finally:
            store.close()


class TestJoblogWritesIntoTheOrigin:
    def test_a_backup_job_is_stored_with_all_its_events(
        self, vintage_a_url: str, tmp_path: Path
    ) -> None:
        migrate.upgrade(vintage_a_url)
        dead_letter = tmp_path / "dead-letter.jsonl"
        tracker = joblog.Tracker(
            vintage_a_url, flush_interval=0.01, dead_letter_path=str(dead_letter)
        )
        try:
            long_owner = "backup-agent@" + "x" * 140
            with tracker.job(
                "backup",
                "nightly-volume-backup",
                owner=long_owner,
                context_id="ctx-" + "c" * 120,
                external_job_id="backup-" + "e" * 90,
                metadata={"volumes": ["vol-1", "vol-2"]},
            ) as job:
                with job.step("snapshot " + "s" * 220):
                    for number in range(30):
                        tracker.log_event("WARNING", f"copied chunk {number}", {"n": number})
                tracker.log_event("CRITICAL", "checksum retried")
            assert tracker.flush(30)
            stats = tracker.stats()
            assert stats.failed == 0 and stats.dead_lettered == 0
        finally:
            tracker.close()
        assert not dead_letter.exists()
        rows = execute(
            vintage_a_url,
            "SELECT job_type, owner, status FROM job_tracking WHERE id = :id",
            {"id": job.id},
        )
        assert [tuple(r) for r in rows] == [("backup", long_owner, "completed")]
        levels = execute(
            vintage_a_url,
            "SELECT level, COUNT(*) FROM log_events WHERE job_id = :id GROUP BY level",
            {"id": job.id},
        )
        assert {str(level): int(count) for level, count in levels} == {"WARN": 30, "ERROR": 1}

    def test_cancelled_jobs_and_skipped_steps_fit_the_origin_enums(
        self, vintage_a_url: str
    ) -> None:
        migrate.upgrade(vintage_a_url)
        tracker = joblog.Tracker(vintage_a_url, flush_interval=0.01)
        try:
            job = tracker.start_job("failover", "live", steps=["snapshot", "power-on"])
            with job.step("snapshot"):
                pass
            job.cancel()
            assert tracker.flush(30)
        finally:
            tracker.close()
        steps = execute(
            vintage_a_url,
            "SELECT name, status FROM job_steps WHERE job_id = :id ORDER BY seq",
            {"id": job.id},
        )
        assert [tuple(s) for s in steps] == [("snapshot", "completed"), ("power-on", "skipped")]
        (status,) = execute(
            vintage_a_url, "SELECT status FROM job_tracking WHERE id = :id", {"id": job.id}
        )
        assert status[0] == "cancelled"


class TestGoingBack:
    def test_downgrade_to_base_gives_back_the_exact_vintage(self, vintage_url: str) -> None:
        before = platform.fingerprint(vintage_url)
        migrate.upgrade(vintage_url)
        backfill(vintage_url)
        migrate.downgrade(vintage_url, "base")
        assert_origin_restored(before, vintage_url)
        assert migrate.current(vintage_url) is None

    def test_downgrade_refuses_when_a_job_type_no_longer_fits(self, vintage_a_url: str) -> None:
        migrate.upgrade(vintage_a_url)
        execute(
            vintage_a_url,
            "INSERT INTO job_tracking (id, job_type, operation, status)"
            " VALUES ('joblog-backup-1', 'backup', 'nightly', 'completed')",
        )
        before = platform.fingerprint(vintage_a_url)
        with pytest.raises(SchemaError, match=r"job_tracking\.job_type holds 'backup' \(1 rows\)"):
            migrate.downgrade(vintage_a_url, "base")
        assert migrate.current(vintage_a_url) == migrate.head_revision()
        assert platform.fingerprint(vintage_a_url) == before

    @pytest.mark.parametrize("server", SERVERS)
    def test_round_trip_keeps_events_findable_by_external_id(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(server)
        platform.build(url, "b")
        migrate.upgrade(url)
        assert backfill(url) > 0
        migrate.downgrade(url, "base")
        migrate.upgrade(url)
        assert backfill(url) > 0
        rows = execute(
            url,
            "SELECT e.external_job_id, j.external_job_id FROM log_events e"
            " JOIN job_tracking j ON j.id = e.job_id WHERE j.external_job_id IS NOT NULL",
        )
        assert rows and all(event == job for event, job in rows)
        store = Store(url)
        try:
            assert Resolver(store).resolve(platform.GUI_ID).job.id == platform.PARENT
        finally:
            store.close()

    @pytest.mark.parametrize("server", SERVERS)
    def test_vintage_c_backfill_leaves_the_platform_column(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(server)
        platform.build(url, "c")
        nulls = execute(url, "SELECT COUNT(*) FROM log_events WHERE external_job_id IS NULL")
        migrate.upgrade(url)
        result = CliRunner().invoke(db, ["backfill", "--url", url])
        assert result.exit_code == 0, result.output
        assert "platform's own column (vintage c)" in result.output
        assert execute(url, "SELECT COUNT(*) FROM log_events WHERE external_job_id IS NULL") == (
            nulls
        )


class TestFailedAdoption:
    @pytest.mark.parametrize("server", SERVERS)
    def test_a_failure_half_way_is_undone(
        self, server: str, make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = make_database(server)
        platform.build(url, "b")
        before = platform.fingerprint(url)
        real = widening.widen_statements

        def fail_after_the_first(dialect: str, planned: Any) -> list[str]:
            # The first ALTER runs (and commits on MariaDB); the second fails.
            return [real(dialect, planned)[0], "ALTER TABLE job_steps DROP COLUMN no_such_column"]

        monkeypatch.setattr(widening, "widen_statements", fail_after_the_first)
        with pytest.raises(joblog.JobLogError):
            migrate.upgrade(url)
        assert_origin_restored(before, url)
        monkeypatch.undo()
        migrate.upgrade(url)
        assert migrate.current(url) == migrate.head_revision()


class TestRefusals:
    @pytest.mark.parametrize("server", SERVERS)
    def test_a_half_applied_platform_migration(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(server)
        platform.build(url, "a")
        execute(url, "ALTER TABLE job_tracking ADD COLUMN context_id varchar(64) NULL")
        before = platform.fingerprint(url)
        with pytest.raises(SchemaError, match=r"vintage a with part of vintage b"):
            migrate.upgrade(url)
        assert platform.fingerprint(url) == before

    @pytest.mark.parametrize("server", SERVERS)
    def test_joblog_columns_without_joblog_history(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(server)
        platform.build(url, "c")
        execute(url, "ALTER TABLE job_tracking ADD COLUMN heartbeat_at timestamp NULL")
        before = platform.fingerprint(url)
        with pytest.raises(SchemaError, match=r"job_tracking\.heartbeat_at"):
            migrate.upgrade(url)
        assert platform.fingerprint(url) == before

    @pytest.mark.parametrize("server", SERVERS)
    def test_a_missing_table(self, server: str, make_database: MakeDatabase) -> None:
        url = make_database(server)
        platform.build(url, "a")
        execute(url, "DROP TABLE failover_jobs")
        with pytest.raises(SchemaError, match="missing table failover_jobs"):
            migrate.upgrade(url)
        assert "alembic_version" not in table_names(url)

    def test_sqlite_is_not_the_platforms_backend(self, make_database: MakeDatabase) -> None:
        url = make_database("sqlite")
        execute(url, "CREATE TABLE job_tracking (id varchar(64) PRIMARY KEY)")
        with pytest.raises(SchemaError, match="MariaDB"):
            migrate.upgrade(url)


class TestOfflineSql:
    @pytest.mark.parametrize("server", SERVERS)
    def test_prints_the_adoption_and_changes_nothing(
        self, server: str, make_database: MakeDatabase
    ) -> None:
        url = make_database(server)
        platform.build(url, "b")
        before = platform.fingerprint(url)
        result = CliRunner().invoke(db, ["upgrade", "--sql", "--url", url])
        assert result.exit_code == 0, result.output
        sql = result.output
        assert "CREATE TABLE IF NOT EXISTS joblog_adoption" in sql
        assert "INSERT INTO alembic_version (version_num) VALUES ('0001_base')" in sql
        assert "ADD COLUMN IF NOT EXISTS planned_steps" in sql
        widened = "MODIFY `job_type` varchar(50)" if server == "mariadb" else "job_type_check"
        assert widened in sql
        # job_tracking.external_job_id is the platform's: the SQL neither adds nor indexes it.
        assert "ADD COLUMN IF NOT EXISTS external_job_id VARCHAR(255)" not in sql.replace(
            "log_events ADD COLUMN IF NOT EXISTS external_job_id", ""
        )
        assert "idx_job_tracking_external_job_id" not in sql
        assert json.loads(_record_literal(sql))["vintage"] == "b"
        assert platform.fingerprint(url) == before


def _record_literal(sql: str) -> str:
    """The origin JSON inside the printed INSERT INTO joblog_adoption."""
    start = sql.index("INSERT INTO joblog_adoption")
    statement = sql[start : sql.index(";\n", start)]
    literal = statement[statement.index("'{") + 1 : statement.rindex("}'") + 1]
    return literal.replace("''", "'").replace("\\\\", "\\")


class TestEnsureSchema:
    def test_the_platform_is_left_alone_and_told_how(self, vintage_a_url: str) -> None:
        before = platform.fingerprint(vintage_a_url)
        engine = sa.create_engine(vintage_a_url)
        with pytest.raises(SchemaError, match="joblog db upgrade --check"):
            migrate.ensure_schema(engine)
        engine.dispose()
        assert platform.fingerprint(vintage_a_url) == before

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

    def test_after_full_downgrade_counts_as_empty(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        migrate.downgrade(database_url, "base")
        engine = sa.create_engine(database_url)
        assert migrate.detect(engine) == "empty"
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

    def test_newer_revision_is_named(self, database_url: str) -> None:
        migrate.upgrade(database_url)
        engine = sa.create_engine(database_url)
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
        with pytest.raises(SchemaError, match=r"0099_future.*does not know"):
            migrate.ensure_schema(engine)
        engine.dispose()
