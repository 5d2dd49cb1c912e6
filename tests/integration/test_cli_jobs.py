"""``joblog jobs``: the API's JSON shapes, --since, --wide, and URLs that lead nowhere."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import joblog
from joblog.api.app import create_app
from joblog.api.serialize import job_to_dict, summary_to_dict
from joblog.api.settings import ApiSettings
from joblog.cli import jobs as jobs_module
from joblog.cli import main as cli
from tests.conftest import BACKENDS, MYSQL_ADMIN_URL, PG_ADMIN_URL, require_backend
from tests.support.api import LiveServer, backend_database

LONG_EXTERNAL = "unified-live-failover-" + "x" * 60
READ = "read-token-0123456789abcdef"


def jobs(*args: str, width: int = 80) -> Result:
    return CliRunner().invoke(cli, ["jobs", *args], terminal_width=width)


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def job_ids(url: str) -> list[str]:
    with joblog.Tracker(url) as tracker:
        ids = []
        for n in range(3):
            steps = ["check [/]", "boot"]
            with tracker.job(
                "failover", "live", external_job_id=f"{LONG_EXTERNAL}-{n}", steps=steps
            ) as job:
                with job.step("check [/]"):
                    tracker.log_event("INFO", "checked")
                ids.append(job.id)
    return ids


@pytest.fixture(scope="module")
def server(url: str, job_ids: list[str]) -> Iterator[str]:
    with LiveServer(create_app(url, settings=ApiSettings(read_tokens=(READ,)))) as live:
        yield live.url


class TestJson:
    def test_the_list_is_the_apis_job_object_newest_first(
        self, url: str, job_ids: list[str]
    ) -> None:
        result = jobs("--json", "--limit", "2", "--url", url)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [row["id"] for row in rows] == job_ids[::-1][:2]
        with joblog.Tracker(url) as tracker:
            stored = tracker.store.reads.get_job(job_ids[-1])
        assert stored is not None
        assert rows[0] == json.loads(json.dumps(job_to_dict(stored)))

    def test_one_job_is_the_apis_summary(self, url: str, job_ids: list[str]) -> None:
        result = jobs(f"{LONG_EXTERNAL}-1", "--json", "--url", url)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        with joblog.Tracker(url) as tracker:
            expected = summary_to_dict(tracker.resolve(f"{LONG_EXTERNAL}-1"))
        assert set(summary) == set(expected)
        assert summary["job"]["id"] == job_ids[1]
        assert summary["resolved_by"] == "external_job_id"


class TestThroughAServer:
    @pytest.mark.parametrize("args", [["--json"], ["--json", "--status", "completed,running"]])
    def test_the_list_is_what_the_database_gives(
        self, url: str, server: str, job_ids: list[str], args: list[str]
    ) -> None:
        direct = jobs(*args, "--url", url)
        remote = jobs(*args, "--server", server, "--token", READ)
        assert direct.exit_code == remote.exit_code == 0, remote.output
        assert remote.stdout == direct.stdout and len(remote.stdout.splitlines()) == 3

    def test_one_job_is_what_the_database_gives(
        self, url: str, server: str, job_ids: list[str]
    ) -> None:
        any_id = f"{LONG_EXTERNAL}-2"
        direct = jobs(any_id, "--json", "--url", url)
        remote = jobs(any_id, "--json", "--server", server, "--token", READ)
        assert json.loads(remote.stdout) == json.loads(direct.stdout)
        shown = jobs(any_id, "--server", server, "--token", READ, width=200)
        assert shown.exit_code == 0 and "check [/]" in shown.stdout and job_ids[2] in shown.stdout

    def test_pages_through_the_api(
        self, server: str, job_ids: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(jobs_module, "_PAGE", 1)
        result = jobs("--json", "--limit", "3", "--server", server, "--token", READ)
        assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == job_ids[::-1]

    def test_unknown_id_and_missing_token(self, server: str, job_ids: list[str]) -> None:
        unknown = jobs("no-such-job", "--server", server, "--token", READ)
        assert (
            unknown.exit_code == 1 and "no job is known by the ID 'no-such-job'" in unknown.output
        )
        no_token = jobs("--server", server)
        assert no_token.exit_code == 1 and "wants a token" in no_token.output


class TestSince:
    def test_since_keeps_newer_jobs(self, url: str, job_ids: list[str]) -> None:
        recent = jobs("--json", "--since", "1h", "--url", url)
        assert len(recent.stdout.splitlines()) == 3
        future = jobs("--json", "--since", "2999-01-01", "--url", url)
        assert future.exit_code == 0 and future.stdout == ""

    def test_since_garbage_is_a_usage_error(self, url: str, job_ids: list[str]) -> None:
        result = jobs("--since", "last tuesday", "--url", url)
        assert result.exit_code == 2 and "--since" in result.output


class TestIdsStayWhole:
    def test_wide_keeps_every_id_on_its_line_on_a_narrow_terminal(
        self, url: str, job_ids: list[str]
    ) -> None:
        result = jobs("--wide", "--url", url, width=60)
        assert result.exit_code == 0
        lines = result.stdout.splitlines()
        for job_id, n in zip(job_ids, range(3), strict=True):
            assert any(job_id in line and f"{LONG_EXTERNAL}-{n}" in line for line in lines)

    def test_a_narrow_terminal_folds_but_never_cuts(self, url: str, job_ids: list[str]) -> None:
        result = jobs("--url", url, width=60)
        assert result.exit_code == 0
        assert "…" not in result.stdout
        squeezed = "".join(ch for ch in result.stdout if ch.isalnum() or ch == "-")
        assert all(job_id.replace("-", "") in squeezed.replace("-", "") for job_id in job_ids)


class TestUrlsThatLeadNowhere:
    def test_an_unsupported_url_is_a_clean_error(self) -> None:
        result = jobs("--url", "oracle://scott@db/orcl")
        assert result.exit_code == 1
        assert "unsupported database 'oracle'" in result.output
        assert "Traceback" not in result.output

    def test_a_url_that_is_no_url_is_a_clean_error(self) -> None:
        result = jobs("--url", "::not a url::")
        assert result.exit_code == 1 and "not a database URL" in result.output

    @pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
    def test_a_server_database_that_does_not_exist(self, backend: str) -> None:
        require_backend(backend)
        admin = PG_ADMIN_URL if backend == "postgresql" else MYSQL_ADMIN_URL
        missing = f"joblog_missing_{uuid.uuid4().hex[:8]}"
        url = sa.make_url(admin).set(database=missing).render_as_string(hide_password=False)
        for command in (["jobs"], ["logs", "x"], ["cancel", "x"]):
            result = CliRunner().invoke(cli, [*command, "--url", url])
            assert result.exit_code == 1, result.output
            assert missing in result.output  # the driver's own words name it
            assert "Traceback" not in result.output

    def test_a_sqlite_uri_filename_is_not_created(self, tmp_path: Path) -> None:
        missing = tmp_path / "typo.db"
        url = f"sqlite:///file:{missing}?mode=rwc&uri=true"
        for command in (["jobs"], ["logs", "x"], ["cancel", "x"]):
            result = CliRunner().invoke(cli, [*command, "--url", url])
            assert result.exit_code == 1
            assert "no joblog database at" in result.output
        assert not missing.exists()


class TestABrokenPipe:
    def test_a_reader_that_goes_away_ends_logs_quietly_with_141(self, tmp_path: Path) -> None:
        """Not 1, which ``--follow`` means as "the job failed"; 141 is what a shell reports
        for a writer that SIGPIPE ended."""
        url = f"sqlite:///{tmp_path / 'pipe.db'}"
        with joblog.Tracker(url) as tracker, tracker.job("failover", "live") as job:
            for n in range(3000):
                tracker.log_event("INFO", f"line {n}")
        entry = "from joblog.cli import main; main()"
        command = [sys.executable, "-c", entry, "logs", job.id, "--url", url, "--limit", "100000"]
        for extra in (["--json"], ["--follow"]):  # click.echo, and the console
            process = subprocess.Popen(
                [*command, *extra],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdout is not None and process.stderr is not None
            process.stdout.readline()
            process.stdout.close()  # as `| head -1` does
            errors = process.stderr.read().decode()
            process.stderr.close()
            assert process.wait(60) == 141, (extra, errors)
            assert "Traceback" not in errors and "Exception ignored" not in errors
