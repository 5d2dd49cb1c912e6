"""The demo workload, the ``joblog demo`` command and the dashboard's readable errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from joblog.cli import main
from joblog.demo import FAILOVER_STEPS, LIVE_ONLY, Scenario, Workload, insert_legacy_rows
from joblog.model import JobStatus, StepStatus
from joblog.tracker import Tracker
from joblog.web.errors import readable_error
from joblog.web.render import format_duration

FAST = 500.0


@pytest.fixture
def tracker(make_database: object) -> Iterator[Tracker]:
    tracker = Tracker(make_database("sqlite"), flush_interval=0.02)  # type: ignore[operator]
    tracker.install_logging()
    yield tracker
    tracker.close()


def run(tracker: Tracker, scenario: Scenario) -> JobStatus:
    status = Workload(tracker, speed=FAST).failover(scenario)
    tracker.flush(10)
    return status


class TestWorkload:
    def test_live_failover_completes_every_step(self, tracker: Tracker) -> None:
        scenario = Scenario(vm="pgtest2", kind="live")
        assert run(tracker, scenario) is JobStatus.COMPLETED
        summary = tracker.resolve(scenario.external_job_id)
        assert [s.name for s in summary.steps] == [name for name, _w in FAILOVER_STEPS]
        assert {s.status for s in summary.steps} == {StepStatus.COMPLETED}
        assert summary.progress.percent == 100

    def test_test_failover_skips_the_live_only_steps(self, tracker: Tracker) -> None:
        scenario = Scenario(vm="web-01", kind="test")
        run(tracker, scenario)
        steps = {s.name: s.status for s in tracker.resolve(scenario.external_job_id).steps}
        assert {steps[name] for name in LIVE_ONLY} == {StepStatus.SKIPPED}

    def test_volume_attachment_runs_a_child_job_per_disk(self, tracker: Tracker) -> None:
        scenario = Scenario(vm="web-02", disks=3)
        run(tracker, scenario)
        children = tracker.resolve(scenario.external_job_id).children
        assert [c.job_type for c in children] == ["volume-attachment"] * 3

    def test_failing_step_fails_the_job_with_a_realistic_error(self, tracker: Tracker) -> None:
        scenario = Scenario(vm="mail-gw", fail_at="snapshot")
        assert run(tracker, scenario) is JobStatus.FAILED
        job = tracker.resolve(scenario.external_job_id).job
        assert job.error_message is not None and job.error_message.startswith("TimeoutError")

    def test_log_events_carry_attrs(self, tracker: Tracker) -> None:
        scenario = Scenario(vm="erp-app-03")
        run(tracker, scenario)
        events = tracker.store.reads.recent_events(
            external_job_id=scenario.external_job_id, limit=200
        )
        assert any((e.attrs or {}).get("volume_id", "").startswith("vol-") for e in events)

    def test_successful_test_failover_is_rolled_back(self, tracker: Tracker) -> None:
        scenario = Scenario(vm="ad-dc01", kind="test")
        Workload(tracker, speed=FAST).run_scenario(scenario)
        tracker.flush(10)
        (rollback,) = tracker.recent_jobs(job_type="cleanup")
        assert (rollback.external_job_id or "").startswith("rollback-test-failover-ad-dc01-")

    def test_legacy_rows_resolve_through_the_legacy_tier(self, tracker: Tracker) -> None:
        for job_id in insert_legacy_rows(tracker):
            assert tracker.resolve(job_id).legacy is not None

    def test_rejects_a_speed_that_is_not_positive(self, tracker: Tracker) -> None:
        with pytest.raises(ValueError, match="speed"):
            Workload(tracker, speed=0)


class TestDemoCommand:
    def test_bounded_run_prints_the_dashboard_url_and_exits(self, make_database: object) -> None:
        url = make_database("sqlite")  # type: ignore[operator]
        args = ["demo", "--url", url, "--port", "0", "--once", "--jobs", "1", "--speed", "200"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "dashboard:  http://127.0.0.1:" in result.output
        assert "unified-live-failover-pgtest2-" in result.output
        assert result.output.rstrip().endswith("stopped.")


class TestReadableError:
    @pytest.mark.parametrize(
        ("raw", "sentence"),
        [
            ("TimeoutError: snapshot did not finish", "The step took too long and was stopped."),
            ("[Errno 111] Connection refused", "A service could not be reached."),
            ("volume vol-1 is already attached", "A resource was still in use by something else."),
            ("PermissionError: access denied", "Access was refused"),
            (
                "abandoned: no heartbeat for 60s; the producer probably stopped",
                "stopped reporting (it crashed or was killed)",
            ),
        ],
    )
    def test_maps_common_errors_to_plain_words(self, raw: str, sentence: str) -> None:
        assert sentence in readable_error(raw, "snapshot")

    def test_names_the_step_when_the_error_is_unknown(self) -> None:
        assert readable_error("exit status 3", "driver-injection") == (
            "The job failed during step driver-injection."
        )


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(None, "—"), (4.25, "4.2s"), (42, "42s"), (65, "1m 05s"), (7500, "2h 05m")],
    )
    def test_formats_for_people(self, seconds: float | None, text: str) -> None:
        assert format_duration(seconds) == text
