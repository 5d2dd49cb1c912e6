"""structlog events inside a job are stored with the job's IDs, like stdlib records."""

from __future__ import annotations

import structlog

import joblog
from tests.support.db import events


def test_structlog_events_are_attributed(tracker: joblog.Tracker) -> None:
    structlog.configure(
        processors=[joblog.structlog_processor(tracker), structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    try:
        log = structlog.get_logger()
        with tracker.job("failover", "live", external_job_id="sl-1") as job:
            with job.step("snapshot") as step:
                rendered = log.warning("snapshot slow", vm="pgtest2")
        assert '"job_id"' in rendered
        tracker.flush(30)
        (row,) = events(tracker.store)
        assert (row["job_id"], row["step_id"], row["external_job_id"]) == (job.id, step.id, "sl-1")
        assert row["level"] == "WARN"
        assert row["message"] == "snapshot slow"
        assert row["attrs"]["vm"] == "pgtest2"
    finally:
        structlog.reset_defaults()
