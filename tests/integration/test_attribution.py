"""Every event carries its own job's job_id, step_id and external_job_id."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import joblog
from tests.support.db import events, jobs_by_id, steps_by_id

STEPS = ("validation", "snapshot", "power-on")


def _run_job(tracker: joblog.Tracker, log: logging.Logger, external_id: str) -> None:
    with tracker.job("failover", "live", external_job_id=external_id, steps=STEPS) as job:
        log.info("start %s", external_id, extra={"expect": external_id, "expect_step": None})
        for name in STEPS:
            with job.step(name):
                for i in range(4):
                    log.debug("%s %d", name, i, extra={"expect": external_id, "expect_step": name})


def _check_attribution(tracker: joblog.Tracker, expected_events: int) -> None:
    assert tracker.flush(30)
    jobs = jobs_by_id(tracker.store)
    job_by_external = {row["external_job_id"]: job_id for job_id, row in jobs.items()}
    steps = steps_by_id(tracker.store)
    stored = [row for row in events(tracker.store) if (row["attrs"] or {}).get("expect")]
    assert len(stored) == expected_events  # 0 missing
    wrong = []
    for row in stored:
        expect = row["attrs"]["expect"]
        expect_step = row["attrs"]["expect_step"]
        step_name = steps[row["step_id"]]["name"] if row["step_id"] else None
        step_job = steps[row["step_id"]]["job_id"] if row["step_id"] else None
        if (
            row["external_job_id"] != expect
            or row["job_id"] != job_by_external[expect]
            or step_name != expect_step
            or (step_job is not None and step_job != row["job_id"])
        ):
            wrong.append(row)
    assert wrong == []  # 0 misattributed


class TestAttribution:
    def test_eight_threads_each_log_into_their_own_jobs(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        def worker(n: int) -> None:
            for k in range(3):
                _run_job(tracker, log, f"unified-live-failover-vm{n}-{k}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _check_attribution(tracker, expected_events=8 * 3 * (1 + len(STEPS) * 4))

    def test_fifty_asyncio_tasks_each_log_into_their_own_jobs(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        async def one(n: int) -> None:
            external_id = f"unified-test-failover-vm{n}-1758553933"
            with tracker.job("failover", "test", external_job_id=external_id, steps=STEPS) as job:
                log.info("start", extra={"expect": external_id, "expect_step": None})
                for name in STEPS:
                    with job.step(name):
                        for i in range(3):
                            await asyncio.sleep(0)  # let the other 49 tasks interleave
                            log.info("%d", i, extra={"expect": external_id, "expect_step": name})

        async def main() -> None:
            await asyncio.gather(*(one(n) for n in range(50)))

        asyncio.run(main())
        _check_attribution(tracker, expected_events=50 * (1 + len(STEPS) * 3))

    def test_carry_takes_the_current_step_into_an_executor(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        external_id = "carry-1"
        with (
            tracker.job("failover", "live", external_job_id=external_id) as job,
            job.step("snapshot"),
            ThreadPoolExecutor(4) as pool,
        ):

            def work(i: int) -> None:
                log.info("disk %d", i, extra={"expect": external_id, "expect_step": "snapshot"})

            list(pool.map(joblog.carry(work), range(12)))
        _check_attribution(tracker, expected_events=12)

    def test_activate_makes_a_job_current_in_a_plain_thread(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        with tracker.job("failover", "live", external_job_id="activate-1") as job:

            def work() -> None:
                with job.activate():
                    log.info("inside", extra={"expect": "activate-1", "expect_step": None})
                log.info("outside")

            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        _check_attribution(tracker, expected_events=1)
        outside = [row for row in events(tracker.store) if row["message"] == "outside"]
        assert [row["job_id"] for row in outside] == [None]

    def test_levels_are_mapped_to_the_four_of_the_table(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        with tracker.job("failover", "live"):
            for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 50):
                log.log(level, "level %d", level)
        tracker.flush(30)
        stored = {row["message"]: row["level"] for row in events(tracker.store)}
        assert stored == {
            "level 10": "DEBUG",
            "level 20": "INFO",
            "level 30": "WARN",
            "level 40": "ERROR",
            "level 50": "ERROR",
        }

    def test_extra_fields_and_exceptions_go_to_attrs(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        with tracker.job("failover", "live"):
            try:
                raise ValueError("disk busy")
            except ValueError:
                log.exception("snapshot failed", extra={"vm": "pgtest2", "bytes": 10})
        tracker.flush(30)
        (row,) = [r for r in events(tracker.store) if r["message"] == "snapshot failed"]
        assert row["attrs"]["vm"] == "pgtest2"
        assert row["attrs"]["bytes"] == 10
        assert row["attrs"]["exc_type"] == "ValueError"
        assert "disk busy" in row["attrs"]["exception"]
        assert row["ts"].microsecond or row["ts"].second is not None


class TestUnattributed:
    def test_records_outside_jobs_are_kept_with_null_ids(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        log.warning("no job here")
        tracker.flush(30)
        (row,) = [r for r in events(tracker.store) if r["message"] == "no job here"]
        assert (row["job_id"], row["step_id"], row["external_job_id"]) == (None, None, None)

    def test_drop_policy_stores_only_records_inside_jobs(
        self, database_url: str, log: logging.Logger
    ) -> None:
        tracker = joblog.Tracker(database_url, unattributed="drop")
        tracker.install_logging()
        try:
            log.warning("dropped")
            with tracker.job("failover", "live"):
                log.warning("kept")
            tracker.flush(30)
            assert [r["message"] for r in events(tracker.store)] == ["kept"]
        finally:
            tracker.close()

    def test_install_logging_twice_attaches_one_handler(self, tracker: joblog.Tracker) -> None:
        tracker.install_logging()
        tracker.install_logging()
        root = logging.getLogger()
        assert sum(isinstance(h, joblog.JobLogHandler) for h in root.handlers) == 1
