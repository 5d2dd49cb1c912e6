"""Remote producers' job changes (the rules behind the write API)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import joblog
from joblog import JobStatus, PlannedStep, ResolvedBy, StepStatus
from joblog.resolve import Resolver
from joblog.storage.producer import IncomingEvent, ProducerWrites
from joblog.storage.store import Store
from tests.support.db import events


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


@pytest.fixture
def producer(store: Store) -> ProducerWrites:
    return ProducerWrites(store, attach=Resolver(store).attach)


def event(message: str, **kwargs: object) -> IncomingEvent:
    return IncomingEvent(level="INFO", message=message, ts=datetime.now(UTC), **kwargs)  # type: ignore[arg-type]


class TestJobs:
    def test_a_job_run_step_by_step_completes_at_100(self, producer: ProducerWrites) -> None:
        plan = [PlannedStep("validation"), PlannedStep("snapshot")]
        job = producer.start_job("failover", "live", external_job_id="go-1", planned=plan)
        assert job.status is JobStatus.RUNNING
        step = producer.start_step(job.id, "validation")
        assert step.seq == 1
        producer.finish_step(job.id, 1, StepStatus.COMPLETED)
        assert producer.store.reads.get_job(job.id).percent_complete == 50  # type: ignore[union-attr]
        done = producer.update_job(job.id, status=JobStatus.COMPLETED)
        assert (done.status, done.percent_complete) == (JobStatus.COMPLETED, 100)

    def test_progress_never_goes_backwards(self, producer: ProducerWrites) -> None:
        job = producer.start_job("failover", "live")
        producer.update_job(job.id, percent=60)
        assert producer.update_job(job.id, percent=20).percent_complete == 60

    def test_completion_after_a_failed_required_step_ends_failed(
        self, producer: ProducerWrites
    ) -> None:
        job = producer.start_job("rollback", "cleanup")
        producer.start_step(job.id, "delete-vm")
        producer.finish_step(job.id, 1, StepStatus.FAILED, "vm locked")
        ended = producer.update_job(job.id, status=JobStatus.COMPLETED)
        assert ended.status is JobStatus.FAILED
        assert "delete-vm" in (ended.error_message or "")

    def test_a_finished_job_refuses_changes(self, producer: ProducerWrites) -> None:
        job = producer.start_job("failover", "live")
        producer.update_job(job.id, status=JobStatus.CANCELLED)
        with pytest.raises(joblog.InvalidTransition):
            producer.start_step(job.id, "late")

    def test_external_id_in_use_is_refused(self, producer: ProducerWrites) -> None:
        producer.start_job("failover", "live", external_job_id="go-2")
        with pytest.raises(joblog.ExternalIdInUse):
            producer.start_job("failover", "live", external_job_id="go-2")

    def test_unknown_parent_is_refused(self, producer: ProducerWrites) -> None:
        with pytest.raises(joblog.JobNotFound):
            producer.start_job("failover", "live", parent_job_id="nope")

    def test_concurrent_step_starts_get_distinct_seqs(self, producer: ProducerWrites) -> None:
        job = producer.start_job("failover", "live")
        seqs: list[int] = []
        errors: list[BaseException] = []

        def start(n: int) -> None:
            try:
                for k in range(5):
                    seqs.append(producer.start_step(job.id, f"s{n}-{k}").seq or 0)
            except BaseException as error:  # collected for the assertion below
                errors.append(error)

        threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(seqs) == list(range(1, 21))


class TestEvents:
    def test_a_retried_batch_is_stored_once(self, producer: ProducerWrites) -> None:
        job = producer.start_job("failover", "live", external_job_id="go-3")
        batch = [event("one", job_id=job.id), event("two", job_id=job.id)]
        assert producer.ingest_events("batch-1", batch)
        assert not producer.ingest_events("batch-1", batch)
        stored = events(producer.store)
        assert [row["message"] for row in stored] == ["one", "two"]
        assert {row["external_job_id"] for row in stored} == {"go-3"}

    def test_events_name_their_step_by_seq(self, producer: ProducerWrites) -> None:
        job = producer.start_job("failover", "live")
        step = producer.start_step(job.id, "snapshot")
        producer.ingest_events("b", [event("snap", job_id=job.id, step_seq=1)])
        assert [row["step_id"] for row in events(producer.store)] == [step.id]

    def test_events_of_an_unknown_job_refuse_the_whole_batch(
        self, producer: ProducerWrites
    ) -> None:
        with pytest.raises(joblog.JobNotFound):
            producer.ingest_events("b", [event("x", job_id="missing")])
        assert events(producer.store) == []
        # the batch key was rolled back with it, so a corrected retry is accepted
        assert producer.ingest_events("b", [event("x", external_job_id="only-external")])

    def test_events_with_only_an_external_id_resolve_by_the_log_events_tier(
        self, producer: ProducerWrites
    ) -> None:
        producer.ingest_events("b", [event("Failover job started", external_job_id="go-only")])
        summary = Resolver(producer.store).resolve("go-only")
        assert summary.resolved_by is ResolvedBy.LOG_EVENTS


class TestEventAttachment:
    def test_an_external_id_attaches_events_to_the_newest_job(
        self, producer: ProducerWrites
    ) -> None:
        job = producer.start_job("failover", "live", external_job_id="go-9")
        producer.ingest_events("b", [event("hello", external_job_id="go-9")])
        assert [row["job_id"] for row in events(producer.store)] == [job.id]

    def test_a_step_id_of_another_job_is_refused(self, producer: ProducerWrites) -> None:
        first = producer.start_job("failover", "live")
        other = producer.start_job("failover", "live")
        step = producer.start_step(first.id, "a")
        with pytest.raises(joblog.JobNotFound):
            producer.ingest_events("b", [event("x", job_id=other.id, step_id=step.id)])


class TestEndingRules:
    def test_planned_steps_never_started_are_recorded_skipped(
        self, producer: ProducerWrites
    ) -> None:
        plan = [PlannedStep("validation"), PlannedStep("snapshot"), PlannedStep("power-on")]
        job = producer.start_job("failover", "live", planned=plan)
        producer.start_step(job.id, "validation")
        producer.finish_step(job.id, 1, StepStatus.COMPLETED)
        producer.update_job(job.id, status=JobStatus.CANCELLED, error_message="operator")
        steps = producer.store.reads.steps_of(job.id)
        assert [(s.seq, s.name, s.status) for s in steps] == [
            (1, "validation", StepStatus.COMPLETED),
            (2, "snapshot", StepStatus.SKIPPED),
            (3, "power-on", StepStatus.SKIPPED),
        ]
        assert steps[1].error_message == "not started: the job ended cancelled first"
        ended = producer.store.reads.get_job(job.id)
        assert ended is not None and ended.status is JobStatus.CANCELLED
        assert ended.percent_complete < 100
