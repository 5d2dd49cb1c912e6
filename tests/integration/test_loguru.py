"""loguru messages inside a job are stored with its IDs, through the stdlib handler's path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loguru import logger

import joblog
from tests.support.db import events


@pytest.fixture
def sqlite_tracker(tmp_path: Path) -> Iterator[joblog.Tracker]:
    tracker = joblog.Tracker(f"sqlite:///{tmp_path / 'jobs.db'}", flush_interval=0.05)
    yield tracker
    tracker.close()


@contextlib.contextmanager
def sink_on(tracker: joblog.Tracker, **options: Any) -> Iterator[int]:
    sink_id = logger.add(joblog.loguru_sink(tracker, **options), level="TRACE")
    try:
        yield sink_id
    finally:
        logger.remove(sink_id)


@pytest.fixture
def added(sqlite_tracker: joblog.Tracker) -> Iterator[int]:
    with sink_on(sqlite_tracker) as sink_id:
        yield sink_id


def stored(tracker: joblog.Tracker) -> list[dict[str, object]]:
    tracker.flush(30)
    return events(tracker.store)


class TestAttribution:
    def test_messages_in_a_job_and_step_carry_their_ids(self, tracker: joblog.Tracker) -> None:
        with sink_on(tracker):
            with tracker.job("failover", "live", external_job_id="lg-1") as job:
                with job.step("snapshot") as step:
                    logger.info("snapshot of {vm}", vm="pgtest2")
            (row,) = stored(tracker)
        assert (row["job_id"], row["step_id"], row["external_job_id"]) == (job.id, step.id, "lg-1")
        assert row["message"] == "snapshot of pgtest2"
        assert row["level"] == "INFO"

    @pytest.mark.usefixtures("added")
    def test_outside_a_job_is_kept_without_ids(self, sqlite_tracker: joblog.Tracker) -> None:
        logger.warning("no job here")
        (row,) = stored(sqlite_tracker)
        assert (row["job_id"], row["message"], row["level"]) == (None, "no job here", "WARN")

    def test_unattributed_drop_keeps_only_job_messages(
        self, sqlite_tracker: joblog.Tracker
    ) -> None:
        with sink_on(sqlite_tracker, unattributed="drop"):
            logger.info("dropped")
            with sqlite_tracker.job("t", "o"):
                logger.info("kept")
        assert [row["message"] for row in stored(sqlite_tracker)] == ["kept"]

    @pytest.mark.usefixtures("added")
    def test_a_pool_thread_with_carry_logs_into_the_job(
        self, sqlite_tracker: joblog.Tracker
    ) -> None:
        with sqlite_tracker.job("t", "pool") as job, ThreadPoolExecutor(2) as pool:
            list(pool.map(joblog.carry(lambda n: logger.info("item {}", n)), range(3)))
        rows = stored(sqlite_tracker)
        assert sorted(str(row["message"]) for row in rows) == ["item 0", "item 1", "item 2"]
        assert {row["job_id"] for row in rows} == {job.id}

    def test_a_jobs_of_another_tracker_are_not_stored_here(
        self, sqlite_tracker: joblog.Tracker, tmp_path: Path
    ) -> None:
        other = joblog.Tracker(f"sqlite:///{tmp_path / 'other.db'}")
        try:
            with sink_on(sqlite_tracker):
                with other.job("other", "tracker"):
                    logger.info("not ours")
        finally:
            other.close()
        assert stored(sqlite_tracker) == []

    def test_a_url_uses_the_shared_tracker(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        sink_id = logger.add(joblog.loguru_sink(url=url), level="DEBUG")
        tracker = joblog.Tracker.shared(url)
        try:
            with tracker.job("shared", "url") as job:
                logger.debug("through the shared tracker")
            rows = stored(tracker)
        finally:
            logger.remove(sink_id)
            tracker.close()
        assert [(row["message"], row["job_id"]) for row in rows] == [
            ("through the shared tracker", job.id)
        ]


@pytest.mark.usefixtures("added")
class TestContent:
    def test_extra_becomes_attrs(self, sqlite_tracker: joblog.Tracker) -> None:
        logger.bind(vm="pgtest2", attempt=2).info("bound")
        (row,) = stored(sqlite_tracker)
        attrs = row["attrs"]
        assert isinstance(attrs, dict)
        assert (attrs["vm"], attrs["attempt"]) == ("pgtest2", 2)
        assert attrs["logger"] == __name__

    def test_extra_keys_that_a_log_record_reserves_are_prefixed(
        self, sqlite_tracker: joblog.Tracker
    ) -> None:
        logger.bind(name="not the logger", msg="x", thread="t").info("collides")
        (row,) = stored(sqlite_tracker)
        attrs = row["attrs"]
        assert isinstance(attrs, dict)
        assert attrs["extra_name"] == "not the logger"
        assert (attrs["extra_msg"], attrs["extra_thread"]) == ("x", "t")
        assert attrs["logger"] == __name__
        assert row["message"] == "collides"

    def test_an_exception_is_stored_with_its_traceback(
        self, sqlite_tracker: joblog.Tracker
    ) -> None:
        try:
            raise OSError("disk [/dev/sdb] failed")
        except OSError:
            logger.exception("copy failed")
        (row,) = stored(sqlite_tracker)
        attrs = row["attrs"]
        assert isinstance(attrs, dict)
        assert row["level"] == "ERROR"
        assert attrs["exc_type"] == "OSError"
        assert "Traceback" in attrs["exception"]
        assert "disk [/dev/sdb] failed" in attrs["exception"]

    @pytest.mark.parametrize(
        ("level", "stored_level", "loguru_level"),
        [
            ("TRACE", "DEBUG", "TRACE"),
            ("SUCCESS", "INFO", "SUCCESS"),
            ("CRITICAL", "ERROR", None),
        ],
    )
    def test_loguru_levels_map_to_the_four(
        self,
        sqlite_tracker: joblog.Tracker,
        level: str,
        stored_level: str,
        loguru_level: str | None,
    ) -> None:
        logger.log(level, "leveled")
        (row,) = stored(sqlite_tracker)
        assert row["level"] == stored_level
        attrs = row["attrs"]
        assert isinstance(attrs, dict)
        assert attrs.get("loguru_level") == loguru_level

    def test_hostile_text_is_stored_readably(self, sqlite_tracker: joblog.Tracker) -> None:
        logger.info("nul\x00 lone\udcff %s {{braces}} \x1b[2J", 1)  # no %-formatting
        (row,) = stored(sqlite_tracker)
        message = str(row["message"])
        assert "\x00" not in message and "\udcff" not in message
        assert "%s" in message and "{braces}" in message

    def test_a_message_from_the_writer_thread_is_not_looped_back(
        self, sqlite_tracker: joblog.Tracker
    ) -> None:
        # loguru intercepting stdlib logging would hand the writer's own records back.
        writer_thread = SimpleNamespace(id=sqlite_tracker.writer.thread_id, name="joblog-writer")
        logger.patch(lambda record: record.update(thread=writer_thread)).info("the writer's")
        logger.info("the caller's")
        assert [row["message"] for row in stored(sqlite_tracker)] == ["the caller's"]
