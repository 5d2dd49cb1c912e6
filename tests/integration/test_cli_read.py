"""``joblog jobs`` and ``joblog logs`` print data as data, and never create a database."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import joblog
from joblog.cli import main as cli

HOSTILE = "disk [/dev/sdb] failed [/] [link=http://evil.example]click[/link] \x1b[2J\x07"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def hostile_job(database_url: str) -> str:
    with joblog.Tracker(database_url) as tracker:
        tracker.install_logging()
        with tracker.job("failover", "live", external_job_id="ext-[bold]x[/]") as job:
            with job.step("switch [/] volume"):
                logging.getLogger("cli-test").warning(HOSTILE)
            job.fail(HOSTILE)
    return job.id


class TestDataIsPrintedAsText:
    def test_jobs_lists_markup_and_escapes_verbatim(
        self, runner: CliRunner, database_url: str, hostile_job: str
    ) -> None:
        wide = runner.invoke(cli, ["jobs", "--url", database_url], terminal_width=200)
        assert wide.exit_code == 0, wide.output
        assert "ext-[bold]x[/]" in wide.output and hostile_job in wide.output
        narrow = runner.invoke(cli, ["jobs", "--url", database_url], terminal_width=60)
        assert narrow.exit_code == 0, narrow.output
        assert "…" not in narrow.output  # IDs fold onto more lines, never cut

    def test_one_job_shows_the_error_as_text(
        self, runner: CliRunner, database_url: str, hostile_job: str
    ) -> None:
        result = runner.invoke(cli, ["jobs", hostile_job, "--url", database_url])
        assert result.exit_code == 0, result.output
        assert "disk [/dev/sdb] failed [/]" in result.output
        assert "[link=http://evil.example]" in result.output
        assert "\x1b" not in result.output and "\\x1b[2J\\x07" in result.output

    def test_logs_escape_control_characters(
        self, runner: CliRunner, database_url: str, hostile_job: str
    ) -> None:
        result = runner.invoke(cli, ["logs", hostile_job, "--url", database_url])
        assert result.exit_code == 0, result.output
        assert "disk [/dev/sdb] failed [/]" in result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "\\x1b[2J\\x07" in result.output

    def test_status_takes_a_comma_list(
        self, runner: CliRunner, database_url: str, hostile_job: str
    ) -> None:
        ok = runner.invoke(
            cli, ["jobs", "--status", "running,failed", "--json", "--url", database_url]
        )
        assert ok.exit_code == 0, ok.output
        assert hostile_job in ok.output
        bad = runner.invoke(cli, ["jobs", "--status", "running,LOUD", "--url", database_url])
        assert bad.exit_code == 2 and "'LOUD'" in bad.output


class TestReadOnlyCommandsCreateNothing:
    @pytest.mark.parametrize("command", [["jobs"], ["logs", "some-id"]])
    def test_a_mistyped_sqlite_path_is_an_error(
        self, runner: CliRunner, tmp_path: Path, command: list[str]
    ) -> None:
        missing = tmp_path / "typo" / "joblog.db"
        result = runner.invoke(cli, [*command, "--url", f"sqlite:///{missing}"])
        assert result.exit_code == 1
        assert "no joblog database at" in result.output
        assert not missing.exists() and not missing.parent.exists()

    def test_an_empty_database_is_not_migrated(self, runner: CliRunner, tmp_path: Path) -> None:
        empty = tmp_path / "empty.db"
        empty.touch()
        result = runner.invoke(cli, ["jobs", "--url", f"sqlite:///{empty}"])
        assert result.exit_code == 1
        assert "has no joblog tables" in result.output
        with sqlite3.connect(empty) as connection:
            assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []
