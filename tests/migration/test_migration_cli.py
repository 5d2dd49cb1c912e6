"""``joblog db``: each command against a real database, and clean errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from joblog.cli.db import db
from joblog.storage import migrate
from tests.migration.base_rows import create_base_revision_database


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

    def test_backfill(self, runner: CliRunner, database_url: str) -> None:
        create_base_revision_database(database_url)
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
            ("sqlite:////nonexistent-directory/joblog.db", "no database at"),
        ],
    )
    def test_bad_url_is_a_clean_error(self, runner: CliRunner, url: str, message: str) -> None:
        result = runner.invoke(db, ["current", "--url", url])
        assert result.exit_code == 1
        assert f"Error: {message}" in result.output
        assert "Traceback" not in result.output
        assert isinstance(result.exception, SystemExit)  # click's clean exit, not a crash

    def test_upgrade_into_a_missing_directory(self, runner: CliRunner) -> None:
        result = runner.invoke(db, ["upgrade", "--url", "sqlite:////nonexistent-directory/j.db"])
        assert result.exit_code == 1
        assert "Error: cannot connect" in result.output

    def test_unknown_revision(self, runner: CliRunner, database_url: str) -> None:
        result = runner.invoke(db, ["upgrade", "0099_nope", "--url", database_url])
        assert result.exit_code == 1
        assert "unknown revision '0099_nope'" in result.output

    def test_backfill_before_upgrade(self, runner: CliRunner, database_url: str) -> None:
        engine = sa.create_engine(database_url)
        engine.connect().close()  # an empty SQLite database is a file; a missing one is not
        engine.dispose()
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
        assert migrate.current(database_url) == "0007_serving_lookups"

    def test_too_far_is_a_clean_error(self, runner: CliRunner, database_url: str) -> None:
        migrate.upgrade(database_url, "0001_base")
        result = runner.invoke(db, ["downgrade", "-5", "--url", database_url])
        assert result.exit_code == 1
        assert "Error:" in result.output
        assert isinstance(result.exception, SystemExit)


class TestMissingSqliteFile:
    """Read-only commands must not create the SQLite file a URL names."""

    def test_current_reports_no_database(
        self, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(db, ["current", "--url", "sqlite:///does-not-exist.db"])
        assert result.exit_code == 1
        assert "Error: no database at does-not-exist.db" in result.output
        assert list(tmp_path.iterdir()) == []

    def test_current_on_an_existing_file_still_works(
        self, runner: CliRunner, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'joblog.db'}"
        migrate.upgrade(url)
        result = runner.invoke(db, ["current", "--url", url])
        assert result.exit_code == 0, result.output
        assert f"current: {migrate.head_revision()}" in result.output

    def test_current_on_an_in_memory_database(self, runner: CliRunner) -> None:
        result = runner.invoke(db, ["current", "--url", "sqlite://"])
        assert result.exit_code == 0, result.output
        assert "current: (none)" in result.output

    def test_backfill_creates_nothing(self, runner: CliRunner, tmp_path: Path) -> None:
        missing = tmp_path / "typo.db"
        result = runner.invoke(db, ["backfill", "--url", f"sqlite:///{missing}"])
        assert result.exit_code == 1
        assert f"Error: no database at {missing}" in result.output
        assert not missing.exists()

    def test_upgrade_still_creates_the_file(self, runner: CliRunner, tmp_path: Path) -> None:
        created = tmp_path / "new.db"
        result = runner.invoke(db, ["upgrade", "--url", f"sqlite:///{created}"])
        assert result.exit_code == 0, result.output
        assert "before: (none)" in result.output
        assert migrate.current(f"sqlite:///{created}") == migrate.head_revision()


class TestMissingDatabase:
    @pytest.mark.parametrize(
        "url",
        [
            "sqlite://",
            "sqlite:///:memory:",
            "sqlite:///file::memory:?uri=true",
            "sqlite:///file:anything.db?mode=memory&uri=true",
            "postgresql+psycopg://postgres@127.0.0.1/whatever",
        ],
    )
    def test_nothing_to_check(self, url: str) -> None:
        assert migrate.missing_database(url) is None

    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing.db"
        assert migrate.missing_database(f"sqlite:///{missing}") == missing

    def test_missing_uri_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing.db"
        url = f"sqlite:///file:{missing}?mode=ro&uri=true"
        assert migrate.missing_database(url) == missing

    def test_existing_file(self, tmp_path: Path) -> None:
        existing = tmp_path / "there.db"
        existing.touch()
        assert migrate.missing_database(f"sqlite:///{existing}") is None

    def test_current_of_a_missing_file_is_none_and_creates_nothing(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing.db"
        assert migrate.current(f"sqlite:///{missing}") is None
        assert not missing.exists()
