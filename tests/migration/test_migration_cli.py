"""``joblog db``: each command against a real database, and clean errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from joblog.cli.db import db
from joblog.storage import migrate
from tests.migration.older_system import create_older_system, insert_realistic_rows


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


class TestDbCommands:
    def test_upgrade_prints_before_and_after(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["upgrade", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert "before: (none)" in result.output
        assert f"after: {migrate.head_revision()}" in result.output
        assert migrate.current(database_url) == migrate.head_revision()

    def test_upgrade_to_a_revision(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["upgrade", "0001_base", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert migrate.current(database_url) == "0001_base"

    def test_url_from_environment(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["upgrade"], env={"JOBLOG_DATABASE_URL": database_url})
        assert result.exit_code == 0, result.output
        assert migrate.current(database_url) == migrate.head_revision()

    def test_current(self, runner: CliRunner, database_url: str) -> None:
        migrate.upgrade(database_url, "0002_external_job_id")
        result = runner.invoke(db, ["current", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert "current: 0002_external_job_id" in result.output
        assert f"head: {migrate.head_revision()}" in result.output

    def test_downgrade(self, runner: CliRunner, database_url: str) -> None:
        migrate.upgrade(database_url)
        result = runner.invoke(db, ["downgrade", "0001_base", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert f"before: {migrate.head_revision()}" in result.output
        assert "after: 0001_base" in result.output
        assert migrate.current(database_url) == "0001_base"

    def test_stamp(self, runner: CliRunner, database_url: str) -> None:
        migrate.upgrade(database_url, "0001_base")
        result = runner.invoke(db, ["stamp", "0002_external_job_id", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert "after: 0002_external_job_id" in result.output
        assert migrate.current(database_url) == "0002_external_job_id"

    def test_upgrade_adopts_an_older_system(self, runner: CliRunner, database_url: str) -> None:
        create_older_system(database_url)
        insert_realistic_rows(database_url)
        result = runner.invoke(db, ["upgrade", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert migrate.current(database_url) == migrate.head_revision()

    def test_backfill(self, runner: CliRunner, database_url: str) -> None:
        create_older_system(database_url)
        insert_realistic_rows(database_url)
        migrate.upgrade(database_url)
        result = runner.invoke(db, ["backfill", "--batch-size", "25", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert "filled external_job_id on 20 log event(s)" in result.output
        again = runner.invoke(db, ["backfill", "--url", database_url])
        assert "filled external_job_id on 0 log event(s)" in again.output


class TestDbErrors:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("not a url", "not a database URL"),
            ("oracle://scott@localhost/db", "unsupported database"),
            ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "cannot connect"),
            ("mysql+pymysql://root@127.0.0.1:1/nothing", "cannot connect"),
            ("sqlite:////nonexistent-directory/joblog.db", "cannot connect"),
        ],
    )
    def test_bad_url_is_a_clean_error(self, runner: CliRunner, url: str, message: str) -> None:
        result = runner.invoke(db, ["current", "--url", url])
        assert result.exit_code == 1
        assert f"Error: {message}" in result.output
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)  # click's clean exit, not a crash

    def test_unknown_revision(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["upgrade", "0099_nope", "--url", database_url])
        assert result.exit_code == 1
        assert "unknown revision '0099_nope'" in result.output

    def test_backfill_before_upgrade(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["backfill", "--url", database_url])
        assert result.exit_code == 1
        assert "joblog db upgrade" in result.output

    def test_batch_size_must_be_positive(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["backfill", "--batch-size", "0", "--url", database_url])
        assert result.exit_code == 2


class TestRelativeRevisions:
    def test_downgrade_one_step(self, runner: CliRunner, database_url: str) -> None:
        migrate.upgrade(database_url)
        result = runner.invoke(db, ["downgrade", "-1", "--url", database_url])
        assert result.exit_code == 0, result.output
        assert migrate.current(database_url) == "0002_external_job_id"

    def test_too_far_is_a_clean_error(self, runner: CliRunner, database_url: str) -> None:
        migrate.upgrade(database_url, "0001_base")
        result = runner.invoke(db, ["downgrade", "-5", "--url", database_url])
        assert result.exit_code == 1
        assert "Error:" in result.output
        assert isinstance(result.exception, SystemExit)
