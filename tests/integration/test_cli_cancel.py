"""``joblog cancel``: the API's cooperative cancel, on a database and through a server."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

import joblog
from joblog._ops import InsertEvents
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.cli import main as cli
from joblog.cli.cancel import EXIT_ENDED, JobEnded, _on_database
from joblog.model import JobStatus
from joblog.resolve import Resolver
from joblog.storage import schema
from joblog.storage.producer import ProducerWrites
from tests.conftest import BACKENDS
from tests.support.api import LiveServer, backend_database

WRITE = "write-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"


def cancel(*args: str) -> Result:
    return CliRunner().invoke(cli, ["cancel", *args])


def cancel_requested(tracker: joblog.Tracker, job_id: str) -> bool:
    job = tracker.store.reads.get_job(job_id)
    assert job is not None
    return job.cancel_requested


def add_other_ids(tracker: joblog.Tracker) -> None:
    """An events-only ID and a legacy failover row beside the tracker's jobs."""
    now = datetime.now(UTC).replace(tzinfo=None)
    row = (None, None, "events-only-1", "INFO", "a line", None, now, None, None)
    tracker.store.apply_batch([InsertEvents([row])])
    with tracker.store.engine.begin() as conn:
        conn.execute(
            schema.failover_jobs.insert().values(
                job_id="legacy-1", job_type="live", status="snapshotting", created_at=now
            )
        )


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def tracker(url: str) -> Iterator[joblog.Tracker]:
    """The module's database with an events-only ID and a legacy row; each test starts
    its own jobs."""
    tracker = joblog.Tracker(url, flush_interval=0.01)
    add_other_ids(tracker)
    yield tracker
    tracker.close()


class TestOnADatabase:
    def test_the_producer_sees_the_request_and_ends_the_job_cancelled(
        self, url: str, tracker: joblog.Tracker
    ) -> None:
        job = tracker.start_job("failover", "live", external_job_id="ext-cancel-1")
        result = cancel("ext-cancel-1", "--url", url)
        assert result.exit_code == 0, result.output
        assert f"cancel requested for job {job.id} (ext-cancel-1)" in result.stdout
        deadline = time.monotonic() + 30
        while not job.cancel_requested:  # the handle polls the database about once a second
            assert time.monotonic() < deadline
            time.sleep(0.1)
        job.cancel("asked to stop")
        tracker.flush(10)
        stored = tracker.store.reads.get_job(job.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED

    def test_asking_twice_is_fine_and_json_is_the_apis_job(
        self, url: str, tracker: joblog.Tracker
    ) -> None:
        job = tracker.start_job("failover", "live")
        tracker.flush(10)
        assert cancel(job.id, "--url", url).exit_code == 0
        again = cancel(job.id, "--url", url, "--json")
        assert again.exit_code == 0
        assert '"cancel_requested": true' in again.stdout and job.id in again.stdout
        job.complete()

    @pytest.mark.parametrize("ending", ["complete", "fail", "cancel"])
    def test_a_job_that_already_ended(self, url: str, tracker: joblog.Tracker, ending: str) -> None:
        job = tracker.start_job("failover", "live")
        if ending == "fail":
            job.fail("broke")
        else:
            getattr(job, ending)()
        tracker.flush(10)
        result = cancel(job.id, "--url", url)
        assert result.exit_code == EXIT_ENDED
        assert (
            f"job {job.id} already ended ({job.status.value}): nothing to cancel" in result.output
        )
        assert not cancel_requested(tracker, job.id)

    @pytest.mark.parametrize(
        ("any_id", "why"),
        [
            ("no-such-job", "no job is known by the ID 'no-such-job'"),
            ("legacy-1", "is a legacy failover_jobs row"),
            ("events-only-1", "is known only from log events"),
            ("\x1b[2J[red]x", "no job is known by the ID '\\x1b[2J[red]x'"),
        ],
    )
    def test_ids_that_name_no_job_to_cancel(
        self, url: str, tracker: joblog.Tracker, any_id: str, why: str
    ) -> None:
        result = cancel(any_id, "--url", url)
        assert result.exit_code == 1
        assert why in result.output
        assert "\x1b" not in result.output and "Traceback" not in result.output

    def test_a_context_id_names_the_job_to_cancel_instead(
        self, url: str, tracker: joblog.Tracker
    ) -> None:
        context = f"vm-ctx-{uuid.uuid4().hex[:8]}"
        job = tracker.start_job("failover", "live", context_id=context)
        tracker.flush(10)
        result = cancel(context, "--url", url)
        assert result.exit_code == 1
        assert "is a context ID" in result.output and job.id in result.output
        assert not cancel_requested(tracker, job.id)
        job.complete()

    def test_many_cancels_and_the_jobs_end_at_the_same_instant(
        self, url: str, tracker: joblog.Tracker
    ) -> None:
        """Each cancel either is recorded (the job still ran) or finds the job ended;
        the job's own end stands, and nothing fails otherwise."""
        job = tracker.start_job("failover", "live")
        tracker.flush(10)
        producer = ProducerWrites(tracker.store, attach=Resolver(tracker.store).attach)
        barrier = threading.Barrier(7)
        outcomes: list[str] = []

        def cancel_once() -> None:
            barrier.wait()
            try:
                _on_database(url, job.id)
                outcomes.append("requested")
            except JobEnded:
                outcomes.append("ended")
            except Exception as error:  # pragma: no cover - the failure this test looks for
                outcomes.append(repr(error))

        def finish() -> None:
            barrier.wait()
            producer.update_job(job.id, status=JobStatus.COMPLETED)

        threads = [threading.Thread(target=cancel_once) for _ in range(6)]
        threads.append(threading.Thread(target=finish))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(outcomes) == 6 and set(outcomes) <= {"requested", "ended"}
        stored = tracker.store.reads.get_job(job.id)
        assert stored is not None and stored.status is JobStatus.COMPLETED
        assert stored.cancel_requested == ("requested" in outcomes)


@pytest.fixture(scope="module")
def served(url: str, tracker: joblog.Tracker) -> Iterator[dict[str, Any]]:
    """Two servers on the module's database: one with write and read tokens, one
    read-only."""
    settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
    read_only = ApiSettings(write_api=False)
    with LiveServer(create_app(url, settings=settings)) as server:
        with LiveServer(create_app(url, settings=read_only)) as plain:
            yield {"tracker": tracker, "server": server.url, "read_only": plain.url}


class TestThroughAServer:
    def running(self, served: dict[str, Any], **kwargs: Any) -> Any:
        tracker: joblog.Tracker = served["tracker"]
        job = tracker.start_job("failover", "live", **kwargs)
        tracker.flush(10)
        return job

    def test_a_write_token_cancels(self, served: dict[str, Any]) -> None:
        job = self.running(served, external_job_id="srv-ext-1")
        result = cancel("srv-ext-1", "--server", served["server"], "--token", WRITE)
        assert result.exit_code == 0, result.output
        assert f"cancel requested for job {job.id}" in result.stdout
        assert cancel_requested(served["tracker"], job.id)
        job.complete()

    def test_the_environment_names_server_and_token(
        self, served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        job = self.running(served)
        monkeypatch.setenv("JOBLOG_SERVER", served["server"])
        monkeypatch.setenv("JOBLOG_TOKEN", WRITE)
        assert cancel(job.id).exit_code == 0
        assert cancel_requested(served["tracker"], job.id)
        job.complete()

    @pytest.mark.parametrize(
        ("token", "why"), [(None, "wants a token"), (READ, "refused the token")]
    )
    def test_without_a_write_token_nothing_changes(
        self, served: dict[str, Any], token: str | None, why: str
    ) -> None:
        job = self.running(served)
        args = ["--token", token] if token else []
        result = cancel(job.id, "--server", served["server"], *args)
        assert result.exit_code == 1 and why in result.output
        assert not cancel_requested(served["tracker"], job.id)
        job.complete()

    def test_a_read_only_server_says_so(self, served: dict[str, Any]) -> None:
        job = self.running(served)
        result = cancel(job.id, "--server", served["read_only"], "--token", WRITE)
        assert result.exit_code == 1 and "takes no writes" in result.output
        job.complete()

    def test_an_ended_job(self, served: dict[str, Any]) -> None:
        job = self.running(served)
        job.fail("broke")
        served["tracker"].flush(10)
        result = cancel(job.id, "--server", served["server"], "--token", WRITE)
        assert result.exit_code == EXIT_ENDED
        assert "already failed: nothing to cancel" in result.output

    @pytest.mark.parametrize(
        ("any_id", "why"),
        [
            ("no-such-job", "no job is known by the ID 'no-such-job'"),
            ("legacy-1", "is a legacy failover_jobs row"),
            ("events-only-1", "is known only from log events"),
            ("a/b?c#d %2F", "no job is known by the ID 'a/b?c#d %2F'"),
            ("lone\ud800", "no job is known"),
        ],
    )
    def test_ids_that_name_no_job_to_cancel(
        self, served: dict[str, Any], any_id: str, why: str
    ) -> None:
        result = cancel(any_id, "--server", served["server"], "--token", WRITE)
        assert result.exit_code == 1
        assert why in result.output and "Traceback" not in result.output

    def test_url_and_server_both_on_the_command_line_is_a_usage_error(
        self, served: dict[str, Any], url: str
    ) -> None:
        result = cancel("x", "--server", served["server"], "--url", url)
        assert result.exit_code == 2 and "not both" in result.output

    def test_a_server_url_that_is_not_http_is_a_usage_error(self) -> None:
        result = cancel("x", "--server", "ftp://host/")
        assert result.exit_code == 2 and "--server" in result.output
