"""Job and step life cycle: failure paths, cancellation, progress, sequence, ID reuse."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

import joblog
from joblog import JobStatus, StepStatus
from joblog.storage import schema
from tests.support.db import events, jobs_by_id, rows


def job_row(tracker: joblog.Tracker, job_id: str) -> dict[str, object]:
    tracker.flush(30)
    return jobs_by_id(tracker.store)[job_id]


def step_rows(tracker: joblog.Tracker, job_id: str) -> list[dict[str, object]]:
    tracker.flush(30)
    found = rows(tracker.store, schema.job_steps, schema.job_steps.c.job_id == job_id)
    return sorted(found, key=lambda row: int(row["seq"]))


class TestFailurePaths:
    def test_exception_in_a_step_fails_step_and_job_and_is_reraised(
        self, tracker: joblog.Tracker
    ) -> None:
        with pytest.raises(TimeoutError), tracker.job("failover", "live") as job:
            with job.step("snapshot"):
                raise TimeoutError("snapshot timed out after 300s")
        (step,) = step_rows(tracker, job.id)
        assert step["status"] == "failed"
        assert step["error_message"] == "TimeoutError: snapshot timed out after 300s"
        row = job_row(tracker, job.id)
        assert row["status"] == "failed"
        assert "snapshot timed out" in str(row["error_message"])
        (event,) = [e for e in events(tracker.store) if e["step_id"] == step["id"]]
        assert event["level"] == "ERROR"
        assert "Traceback" in event["attrs"]["exception"]

    def test_exception_in_the_job_body_fails_the_job(self, tracker: joblog.Tracker) -> None:
        with pytest.raises(KeyError), tracker.job("failover", "live") as job:
            raise KeyError("vm-42")
        row = job_row(tracker, job.id)
        assert row["status"] == "failed"
        assert row["error_message"] == "KeyError: 'vm-42'"

    def test_a_caught_step_failure_still_fails_the_job(self, tracker: joblog.Tracker) -> None:
        with tracker.job("rollback", "cleanup") as job:
            with pytest.raises(RuntimeError), job.step("delete-vm"):
                raise RuntimeError("vm locked")
            with job.step("release-volume"):
                pass
        row = job_row(tracker, job.id)
        assert row["status"] == "failed"
        assert "delete-vm" in str(row["error_message"])

    def test_a_step_allowed_to_fail_lets_the_job_complete(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "test", steps=["cleanup-temp", "done"]) as job:
            with job.step("cleanup-temp", allow_failure=True):
                raise OSError("temp dir gone")
            with job.step("done"):
                pass
        assert job_row(tracker, job.id)["status"] == "completed"
        statuses = [s["status"] for s in step_rows(tracker, job.id)]
        assert statuses == ["failed", "completed"]

    def test_a_failing_child_fails_itself_and_its_parent(self, tracker: joblog.Tracker) -> None:
        with pytest.raises(ValueError), tracker.job("failover", "live") as parent:
            with parent.step("volume-attachment"), parent.child("attach", "disk-1") as child:
                raise ValueError("no such volume")
        assert job_row(tracker, child.id)["status"] == "failed"
        assert job_row(tracker, child.id)["parent_job_id"] == parent.id
        assert job_row(tracker, parent.id)["status"] == "failed"

    def test_jobcancelled_cancels_the_job(self, tracker: joblog.Tracker) -> None:
        with pytest.raises(joblog.JobCancelled), tracker.job("failover", "live") as job:
            with job.step("final-sync"):
                raise joblog.JobCancelled("operator stopped it")
        assert job_row(tracker, job.id)["status"] == "cancelled"
        (step,) = step_rows(tracker, job.id)
        assert step["status"] == "failed"
        assert str(step["error_message"]).startswith("cancelled")

    def test_a_cancelled_asyncio_task_cancels_its_job(self, tracker: joblog.Tracker) -> None:
        started = asyncio.Event
        holder: dict[str, joblog.JobHandle] = {}

        async def work(ready: asyncio.Event) -> None:
            with tracker.job("failover", "live") as job:
                holder["job"] = job
                ready.set()
                await asyncio.sleep(60)

        async def main() -> None:
            ready = started()
            task = asyncio.create_task(work(ready))
            await ready.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert job_row(tracker, holder["job"].id)["status"] == "cancelled"

    def test_cancel_request_is_seen_by_the_job(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as job:
            assert not job.cancel_requested
            job.request_cancel()
            assert job.cancel_requested
            with pytest.raises(joblog.JobCancelled):
                job.raise_if_cancel_requested()
        assert job_row(tracker, job.id)["cancel_requested"]

    def test_a_finished_step_cannot_finish_again(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as job:
            step = job.start_step("validation")
            step.complete()
            with pytest.raises(joblog.InvalidTransition):
                step.fail("late")

    def test_steps_left_running_fail_when_the_job_ends(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as job:
            job.start_step("forgotten")
        (step,) = step_rows(tracker, job.id)
        assert step["status"] == "failed"
        assert job_row(tracker, job.id)["status"] == "failed"


class TestProgress:
    def test_percent_is_finished_over_planned_not_over_started(
        self, tracker: joblog.Tracker
    ) -> None:
        plan = ["validation", "snapshot", "vm-creation", "power-on"]
        with tracker.job("failover", "live", steps=plan) as job:
            with job.step("validation"):
                pass
            assert job.percent == 25
            assert job_row(tracker, job.id)["percent_complete"] == 25
        assert job_row(tracker, job.id)["percent_complete"] == 100

    def test_weighted_steps(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", steps=[("sync", 3.0), ("power-on", 1.0)]) as job:
            with job.step("sync"):
                pass
            assert job.percent == 75

    def test_explicit_percent_wins_and_never_goes_back(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", steps=["a", "b", "c", "d"]) as job:
            job.progress(40)
            with job.step("a"):
                pass
            assert job.percent == 40  # 25 computed, 40 given: no jump back
            job.progress(10)
            assert job.percent == 40
            with job.step("b"):
                pass
            assert job.percent == 50

    def test_step_progress_moves_within_the_steps_share(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", steps=["sync", "power-on"]) as job:
            with job.step("sync") as step:
                step.progress(50)
                assert job.percent == 25

    def test_child_progress_rolls_up_into_the_parent(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live", steps=["attach", "power-on"]) as parent:
            with parent.step("attach"):
                with parent.child("attach", "disk-1", steps=["map", "verify"]) as child:
                    with child.step("map"):
                        pass
                    assert child.percent == 50
                    assert parent.percent == 25
            assert parent.percent == 50
        assert job_row(tracker, child.id)["percent_complete"] == 100

    def test_invalid_percent_is_refused(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "live") as job, pytest.raises(ValueError):
            job.progress(120)


class TestSteps:
    def test_sequence_numbers_are_unique_under_concurrent_steps(
        self, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live") as job:

            def worker(n: int) -> None:
                with job.activate():
                    for k in range(10):
                        with job.step(f"disk-{n}-{k}"):
                            logging.getLogger("app").info("copy")

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        seqs = sorted(int(s["seq"]) for s in step_rows(tracker, job.id))  # type: ignore[call-overload]
        assert seqs == list(range(1, 81))
        assert tracker.stats().failed == 0
        assert job_row(tracker, job.id)["status"] == "completed"

    def test_skipped_steps_count_as_done(self, tracker: joblog.Tracker) -> None:
        with tracker.job("failover", "test", steps=["power-off", "sync"]) as job:
            job.skip_step("power-off", "test failover keeps the source running")
            assert job.percent == 50
        rows = {s["name"]: (s["status"], s["error_message"]) for s in step_rows(tracker, job.id)}
        # A planned step that never started is recorded skipped when the job ends, so
        # a finished job has no pending step.
        assert rows == {
            "power-off": ("skipped", "test failover keeps the source running"),
            "sync": ("skipped", "not started: the job ended completed first"),
        }


class TestExternalIdPolicy:
    def test_reject_while_a_job_with_that_id_runs(self, tracker: joblog.Tracker) -> None:
        with (
            tracker.job("failover", "live", external_job_id="ext-1"),
            pytest.raises(joblog.ExternalIdInUse),
        ):
            tracker.start_job("failover", "live", external_job_id="ext-1")

    def test_reject_sees_a_job_run_by_another_tracker(
        self, tracker: joblog.Tracker, database_url: str
    ) -> None:
        with tracker.job("failover", "live", external_job_id="ext-2"):
            tracker.flush(30)
            other = joblog.Tracker(database_url)
            try:
                with pytest.raises(joblog.ExternalIdInUse):
                    other.start_job("failover", "live", external_job_id="ext-2")
            finally:
                other.close()

    def test_reuse_after_the_job_ended_and_resolution_returns_the_newest(
        self, tracker: joblog.Tracker
    ) -> None:
        with tracker.job("failover", "live", external_job_id="ext-3") as first:
            pass
        with tracker.job("failover", "live", external_job_id="ext-3") as second:
            pass
        tracker.flush(30)
        assert first.id != second.id
        assert tracker.resolve("ext-3").job.id == second.id

    def test_allow_policy_lets_two_run(self, database_url: str) -> None:
        tracker = joblog.Tracker(database_url, external_id_policy="allow")
        try:
            with (
                tracker.job("f", "live", external_job_id="x"),
                tracker.job("f", "live", external_job_id="x") as newest,
            ):
                pass
            tracker.flush(30)
            assert tracker.resolve("x").job.id == newest.id
        finally:
            tracker.close()

    @pytest.mark.parametrize(
        ("field", "value"),
        [("external_job_id", ""), ("external_job_id", "x" * 256), ("context_id", "y" * 300)],
    )
    def test_bad_ids_are_refused(self, tracker: joblog.Tracker, field: str, value: str) -> None:
        with pytest.raises(ValueError):
            tracker.start_job("failover", "live", **{field: value})


def test_statuses_round_trip(tracker: joblog.Tracker) -> None:
    with tracker.job("failover", "live", steps=["a"]) as job, job.step("a"):
        tracker.flush(30)
        summary = tracker.resolve(job.id)
        assert summary.job.status is JobStatus.RUNNING
        assert summary.steps[0].status is StepStatus.RUNNING
        assert summary.progress.current_step == "a"
