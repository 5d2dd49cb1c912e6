"""Resolution: internal UUID -> external ID -> log events -> legacy failover_jobs -> 404."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

import joblog
from joblog import JobStatus, ResolvedBy, StepStatus
from joblog._ops import InsertEvents
from joblog.demo import insert_failover_job
from joblog.resolve import legacy_percent
from joblog.storage import schema

EXTERNAL = "unified-live-failover-pgtest2-1758553933"


def insert_legacy(tracker: joblog.Tracker, job_id: str, status: str) -> None:
    insert_failover_job(
        tracker.store,
        job_id=job_id,
        vm_id="vm-4711",
        status=status,
        source_vm_name="pgtest2",
    )


class TestTiers:
    def test_internal_uuid(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", external_job_id=EXTERNAL) as job:
            pass
        tracker.flush(30)
        summary = tracker.resolve(job.id)
        assert summary.resolved_by is ResolvedBy.JOB_ID
        assert summary.job.id == job.id

    def test_external_job_id(self, tracker: joblog.Tracker) -> None:
        plan = ["validation", "snapshot", "vm-creation", "power-on"]
        with tracker.job("failover", "live", external_job_id=EXTERNAL, steps=plan) as job:
            with job.step("validation"):
                tracker.log_event("INFO", "validated")
        tracker.flush(30)
        summary = tracker.resolve(EXTERNAL)
        assert summary.resolved_by is ResolvedBy.EXTERNAL_JOB_ID
        assert summary.job.id == job.id
        assert summary.job.status is JobStatus.COMPLETED
        assert [s.name for s in summary.steps] == plan
        # Planned steps that never started are recorded skipped at the job's end.
        assert [s.status for s in summary.steps] == [StepStatus.COMPLETED] + [
            StepStatus.SKIPPED
        ] * 3
        assert {s.error_message for s in summary.steps[1:]} == {
            "not started: the job ended completed first"
        }
        assert summary.progress.percent == 100
        assert summary.progress.planned_steps == 4
        assert summary.progress.completed_steps == 4
        assert [e.message for e in summary.recent_events] == ["validated"]
        assert summary.recent_events[0].external_job_id == EXTERNAL
        assert summary.elapsed_seconds is not None

    def test_log_events_of_a_producer_that_never_made_a_job_row(
        self, tracker: joblog.Tracker
    ) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        tracker.store.apply_batch(
            [
                InsertEvents(
                    [
                        (
                            None,
                            None,
                            "go-producer-7",
                            "INFO",
                            "Failover job started",
                            None,
                            now,
                            None,
                            None,
                        )
                    ]
                )
            ]
        )
        summary = tracker.resolve("go-producer-7")
        assert summary.resolved_by is ResolvedBy.LOG_EVENTS
        assert summary.job.status is JobStatus.UNKNOWN
        assert [e.message for e in summary.recent_events] == ["Failover job started"]

    def test_log_events_pointing_at_a_job(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as job:
            pass
        tracker.flush(30)
        now = datetime.now(UTC).replace(tzinfo=None)
        tracker.store.apply_batch(
            [InsertEvents([(job.id, None, "gui-9", "INFO", "x", None, now, None, None)])]
        )
        summary = tracker.resolve("gui-9")
        assert summary.resolved_by is ResolvedBy.LOG_EVENTS
        assert summary.job.id == job.id

    def test_legacy_failover_jobs(self, tracker: joblog.Tracker) -> None:
        insert_legacy(tracker, "failover-legacy-1", "snapshotting")
        summary = tracker.resolve("failover-legacy-1")
        assert summary.resolved_by is ResolvedBy.FAILOVER_JOBS
        assert summary.progress.percent == legacy_percent("snapshotting") == 25
        assert summary.job.status is JobStatus.RUNNING
        assert summary.progress.current_step == "snapshotting"
        assert summary.legacy is not None and summary.legacy.source_vm_name == "pgtest2"

    def test_tiers_are_tried_in_order(self, tracker: joblog.Tracker) -> None:
        insert_legacy(tracker, EXTERNAL, "completed")
        with tracker.job("failover", "live", external_job_id=EXTERNAL) as job:
            pass
        tracker.flush(30)
        summary = tracker.resolve(EXTERNAL)
        assert summary.resolved_by is ResolvedBy.EXTERNAL_JOB_ID
        assert summary.job.id == job.id

    @pytest.mark.parametrize(
        "unknown", ["nope", "x" * 300, "'; DROP TABLE log_events; --", "../../etc/passwd", "é/ü"]
    )
    def test_unknown_ids_raise_job_not_found(self, tracker: joblog.Tracker, unknown: str) -> None:
        with pytest.raises(joblog.JobNotFound) as caught:
            tracker.resolve(unknown)
        assert caught.value.job_id == unknown
        with tracker.store.engine.connect() as conn:
            assert (
                conn.execute(sa.select(sa.func.count()).select_from(schema.log_events)).scalar()
                == 0
            )


class TestSummary:
    def test_eta_from_past_jobs_of_the_same_type(self, tracker: joblog.Tracker) -> None:
        for _ in range(3):
            with tracker.job("failover", "live"):
                pass
        with tracker.job("failover", "live", steps=["a", "b"]) as job:
            tracker.flush(30)
            assert tracker.resolve(job.id).eta_seconds is not None

    def test_children_are_listed(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as parent:
            with parent.child("attach", "disk-1"):
                pass
        tracker.flush(30)
        assert [c.operation for c in tracker.resolve(parent.id).children] == ["disk-1"]

    def test_recent_jobs_for_a_context_newest_first(self, tracker: joblog.Tracker) -> None:
        ids = []
        for _ in range(3):
            with tracker.job("failover", "live", context_id="vm-pgtest2") as job:
                ids.append(job.id)
        with tracker.job("failover", "live", context_id="vm-other"):
            pass
        tracker.flush(30)
        assert [j.id for j in tracker.recent_jobs(context_id="vm-pgtest2")] == ids[::-1]


class TestContextTier:
    def test_context_id_finds_the_newest_job_of_the_context(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", context_id="ctx-pgtest2-20250909-114231"):
            pass
        with tracker.job("failover", "test", context_id="ctx-pgtest2-20250909-114231") as newest:
            pass
        tracker.flush(30)
        summary = tracker.resolve("ctx-pgtest2-20250909-114231")
        assert summary.resolved_by is ResolvedBy.CONTEXT_ID
        assert summary.job.id == newest.id

    def test_an_external_id_wins_over_a_context_id(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", context_id="same-id"):
            pass
        with tracker.job("failover", "live", external_job_id="same-id") as by_external:
            pass
        tracker.flush(30)
        summary = tracker.resolve("same-id")
        assert (summary.resolved_by, summary.job.id) == (
            ResolvedBy.EXTERNAL_JOB_ID,
            by_external.id,
        )


class TestExactComparison:
    """An ID matches itself only: no case folding, no trailing-space padding, no emoji
    that compare equal (MariaDB's default collation did all three)."""

    @pytest.mark.parametrize(
        ("stored", "asked"),
        [("rs-vm-x", "rs-VM-X"), ("rs-vm-x", "rs-vm-x "), ("vm-😀", "vm-😈")],
    )
    def test_a_near_miss_is_not_found(
        self, tracker: joblog.Tracker, stored: str, asked: str
    ) -> None:
        with tracker.job("failover", "live", external_job_id=stored, context_id=stored):
            logging.getLogger("t").warning("copied", extra={"external_job_id": stored})
        tracker.flush(30)
        assert tracker.resolve(stored).job.external_job_id == stored
        with pytest.raises(joblog.JobNotFound):
            tracker.resolve(asked)
