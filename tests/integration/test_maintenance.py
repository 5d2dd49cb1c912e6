"""Reaping abandoned jobs and pruning old events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from joblog import JobStatus, Level, StepStatus
from joblog._ids import utcnow
from joblog.cli import main
from joblog.resolve import Resolver
from joblog.storage import schema
from joblog.storage.producer import IncomingEvent, ProducerWrites
from joblog.storage.store import Store
from tests.support.db import events, jobs_by_id


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


def age_job(store: Store, job_id: str, seconds: float) -> None:
    past = utcnow() - timedelta(seconds=seconds)
    with store.engine.begin() as conn:
        conn.execute(
            schema.job_tracking.update()
            .where(schema.job_tracking.c.id == job_id)
            .values(heartbeat_at=past, updated_at=past)
        )


def age_events(store: Store, days: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(schema.log_events.update().values(ts=utcnow() - timedelta(days=days)))


def add_events(store: Store, job_id: str | None, *levels: str) -> None:
    ProducerWrites(store, attach=Resolver(store).attach).ingest_events(
        f"k-{job_id}-{len(events(store))}",
        [
            IncomingEvent(level=level, message=level.lower(), ts=utcnow(), job_id=job_id)
            for level in levels
        ],
    )


def go_owned_running_job(store: Store, job_id: str, years: int) -> None:
    """A running job as the platform's Go tracker writes it: no heartbeat_at, ever."""
    long_ago = utcnow() - timedelta(days=365 * years)
    with store.engine.begin() as conn:
        conn.execute(
            schema.job_tracking.insert().values(
                id=job_id,
                job_type="failover",
                operation="live",
                status="running",
                created_at=long_ago,
                started_at=long_ago,
                updated_at=long_ago,
            )
        )


class TestReap:
    def test_a_job_whose_heartbeat_lapsed_is_failed_as_abandoned(self, store: Store) -> None:
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        stale = producer.start_job("failover", "live")
        producer.start_step(stale.id, "final-sync")
        fresh = producer.start_job("failover", "live")
        age_job(store, stale.id, 120)
        assert store.housekeeping.reap_abandoned(60) == [stale.id]
        job = store.reads.get_job(stale.id)
        assert job is not None and job.status is JobStatus.FAILED
        assert (job.error_message or "").startswith("abandoned")
        assert [s.status for s in store.reads.steps_of(stale.id)] == [StepStatus.FAILED]
        assert store.reads.get_job(fresh.id).status is JobStatus.RUNNING  # type: ignore[union-attr]

    def test_a_job_that_never_had_a_heartbeat_survives(self, store: Store) -> None:
        go_owned_running_job(store, "go-owned-1", years=3)
        stale = ProducerWrites(store, attach=Resolver(store).attach).start_job("backup", "nightly")
        age_job(store, stale.id, 600)
        assert store.housekeeping.reap_abandoned(60) == [stale.id]
        go_job = store.reads.get_job("go-owned-1")
        assert go_job is not None and go_job.status is JobStatus.RUNNING
        assert go_job.error_message is None

    def test_the_cli_leaves_a_go_owned_job_alone(self, store: Store, database_url: str) -> None:
        go_owned_running_job(store, "go-owned-2", years=2)
        result = CliRunner().invoke(main, ["reap", "--url", database_url, "--timeout", "1s"])
        assert result.exit_code == 0, result.output
        assert "failed 0 abandoned job(s)" in result.output
        assert store.reads.get_job("go-owned-2").status is JobStatus.RUNNING  # type: ignore[union-attr]

    def test_the_help_says_which_jobs_it_reaps(self) -> None:
        result = CliRunner().invoke(main, ["reap", "--help"])
        assert result.exit_code == 0
        assert "never failed" in " ".join(result.output.split())

    def test_the_cli_reports_what_it_reaped(self, store: Store, database_url: str) -> None:
        job = ProducerWrites(store, attach=Resolver(store).attach).start_job("failover", "live")
        age_job(store, job.id, 600)
        result = CliRunner().invoke(main, ["reap", "--url", database_url, "--timeout", "5m"])
        assert result.exit_code == 0, result.output
        assert job.id in result.output


class TestPrune:
    def test_old_events_go_but_those_of_running_jobs_stay(self, store: Store) -> None:
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        running = producer.start_job("failover", "live")
        finished = producer.start_job("failover", "live")
        producer.update_job(finished.id, status=JobStatus.COMPLETED)
        add_events(store, running.id, "INFO", "DEBUG")
        add_events(store, finished.id, "INFO", "DEBUG")
        add_events(store, None, "WARN")
        age_events(store, 40)
        report = store.housekeeping.prune(timedelta(days=30), batch_size=1)
        assert report.events == 3
        assert {row["job_id"] for row in events(store)} == {running.id}

    def test_level_limits_what_is_pruned(self, store: Store) -> None:
        add_events(store, None, "DEBUG", "INFO", "ERROR")
        age_events(store, 40)
        store.housekeeping.prune(timedelta(days=30), max_level=Level.DEBUG)
        assert sorted(row["level"] for row in events(store)) == ["ERROR", "INFO"]

    def test_recent_events_are_kept(self, store: Store) -> None:
        add_events(store, None, "DEBUG")
        assert store.housekeeping.prune(timedelta(days=30)).events == 0

    def test_include_jobs_removes_finished_jobs_with_their_rows(self, store: Store) -> None:
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        job = producer.start_job("failover", "live")
        producer.start_step(job.id, "validation")
        add_events(store, job.id, "INFO")
        producer.update_job(job.id, status=JobStatus.COMPLETED)
        with store.engine.begin() as conn:
            conn.execute(
                schema.job_tracking.update().values(completed_at=utcnow() - timedelta(days=90))
            )
        age_events(store, 90)
        report = store.housekeeping.prune(timedelta(days=30), include_jobs=True)
        assert report.jobs == 1
        assert jobs_by_id(store) == {}
        with store.engine.connect() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(schema.job_steps)).scalar() == 0
            )

    def test_the_cli_validates_its_arguments(self, database_url: str, store: Store) -> None:
        runner = CliRunner()
        bad = runner.invoke(main, ["prune", "--url", database_url, "--older-than", "soon"])
        assert bad.exit_code == 2
        assert "not a duration" in bad.output
        bad_level = runner.invoke(
            main, ["prune", "--url", database_url, "--older-than", "1d", "--level", "LOUD"]
        )
        assert bad_level.exit_code == 2
        ok = runner.invoke(main, ["prune", "--url", database_url, "--older-than", "30d"])
        assert ok.exit_code == 0, ok.output
        assert "removed 0 log events" in ok.output
