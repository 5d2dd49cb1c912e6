"""The job rules on their own: no database, no tracker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from joblog import rules
from joblog.model import JobStatus, PlannedStep, StepStatus
from joblog.rules import StepFacts

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PLAN = (PlannedStep("validate", 1), PlannedStep("snapshot", 2), PlannedStep("power-on", 1))


class TestNextPercent:
    @pytest.mark.parametrize(
        ("current", "proposed", "expected"),
        [
            (0, 10, 10),
            (10, 10, None),
            (50, 20, None),  # never backwards
            (90, 250, 100),  # clamped
            (0, -5, None),
            (0, 33.9, 33),
            (99, 100.0, 100),
        ],
    )
    def test_forward_only_within_bounds(
        self, current: int, proposed: float, expected: int | None
    ) -> None:
        assert rules.next_percent(current, proposed) == expected


class TestEnding:
    def test_complete_with_all_steps_done_is_completed_at_100(self) -> None:
        steps = [StepFacts(p.name, StepStatus.COMPLETED) for p in PLAN]
        end = rules.ending(JobStatus.COMPLETED, None, steps, PLAN)
        assert (end.status, end.percent, end.error_message) == (JobStatus.COMPLETED, 100, None)
        assert end.fail_running == () and end.skip_planned == ()

    def test_a_failed_required_step_turns_completion_into_failure(self) -> None:
        steps = [
            StepFacts("validate", StepStatus.COMPLETED),
            StepFacts("snapshot", StepStatus.FAILED, error_message="disk full"),
        ]
        end = rules.ending(JobStatus.COMPLETED, None, steps, PLAN)
        assert end.status is JobStatus.FAILED
        assert end.error_message == "step 'snapshot' failed: disk full"
        assert end.percent is None

    def test_an_optional_failed_step_does_not(self) -> None:
        steps = [
            StepFacts("validate", StepStatus.COMPLETED),
            StepFacts("snapshot", StepStatus.FAILED, allow_failure=True, error_message="x"),
            StepFacts("power-on", StepStatus.COMPLETED),
        ]
        assert rules.ending(JobStatus.COMPLETED, None, steps, PLAN).status is JobStatus.COMPLETED

    def test_running_steps_are_failed_and_a_required_one_fails_the_job(self) -> None:
        steps = [StepFacts("validate", StepStatus.RUNNING)]
        end = rules.ending(JobStatus.COMPLETED, None, steps, ())
        assert end.fail_running == ("validate",)
        assert end.status is JobStatus.FAILED
        assert end.error_message == f"step 'validate' failed: {rules.ENDED_WHILE_RUNNING}"

    def test_several_failed_steps_are_all_named_first_error_kept(self) -> None:
        steps = [
            StepFacts("a", StepStatus.FAILED, error_message="first"),
            StepFacts("b", StepStatus.FAILED, error_message="second"),
        ]
        end = rules.ending(JobStatus.COMPLETED, None, steps)
        assert end.error_message == "step 'a', 'b' failed: first"

    @pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
    def test_fail_and_cancel_keep_their_status_and_message(self, status: JobStatus) -> None:
        steps = [StepFacts("validate", StepStatus.RUNNING)]
        end = rules.ending(status, "stopped by operator", steps, PLAN)
        assert (end.status, end.error_message, end.percent) == (status, "stopped by operator", None)
        assert end.fail_running == ("validate",)

    def test_planned_steps_never_started_are_skipped_with_a_reason(self) -> None:
        steps = [StepFacts("validate", StepStatus.COMPLETED)]
        end = rules.ending(JobStatus.COMPLETED, None, steps, PLAN)
        assert end.skip_planned == ("snapshot", "power-on")
        assert end.skip_reason == "not started: the job ended completed first"
        failed = rules.ending(JobStatus.FAILED, "boom", steps, PLAN)
        assert failed.skip_reason == "not started: the job ended failed first"

    @pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.PENDING, JobStatus.UNKNOWN])
    def test_only_endings_end_a_job(self, status: JobStatus) -> None:
        with pytest.raises(ValueError):
            rules.ending(status, None, [])


class TestRows:
    def test_new_job_row_running_or_pending(self) -> None:
        row = rules.new_job_row("j1", "failover", "live", now=NOW, planned=PLAN[:1])
        assert row["status"] == "running" and row["started_at"] == NOW
        assert row["planned_steps"] == [{"name": "validate", "weight": 1}]
        pending = rules.new_job_row("j2", "failover", "live", now=NOW, start=False)
        assert pending["status"] == "pending" and pending["started_at"] is None
        assert pending["planned_steps"] is None and pending["percent_complete"] == 0

    def test_new_step_row_finished_when_recorded_as_skipped(self) -> None:
        running = rules.new_step_row(1, "j1", 1, "validate", now=NOW)
        assert running["status"] == "running" and running["completed_at"] is None
        skipped = rules.new_step_row(
            2, "j1", 2, "snapshot", now=NOW, status=StepStatus.SKIPPED, error_message="why"
        )
        assert skipped["completed_at"] == NOW and skipped["error_message"] == "why"

    def test_planned_weight(self) -> None:
        assert rules.planned_weight(PLAN, "snapshot", None) == 2.0
        assert rules.planned_weight(PLAN, "snapshot", 5) == 5.0
        assert rules.planned_weight(PLAN, "unplanned", None) == 1.0
