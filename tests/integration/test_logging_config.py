"""JobLogHandler built by logging's own configuration (dictConfig, YAML, fileConfig INI),
meeting the code's jobs through the process's shared tracker for the URL."""

from __future__ import annotations

import logging
import logging.config
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

import joblog
from joblog.stdlib import _level_number
from tests.support.db import events


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was (configuration replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def configure(handler: dict[str, Any], *, loggers: dict[str, Any] | None = None) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"joblog": handler},
            "root": {"handlers": ["joblog"], "level": "DEBUG"},
            **({"loggers": loggers} if loggers else {}),
        }
    )


def close_shared(url: str) -> None:
    joblog.Tracker.shared(url).close()


@pytest.mark.usefixtures("restore_logging")
class TestDictConfig:
    def test_records_inside_a_shared_trackers_job_are_attributed(self, database_url: str) -> None:
        configure({"class": "joblog.JobLogHandler", "url": database_url, "level": "INFO"})
        tracker = joblog.Tracker.shared(database_url)
        try:
            with tracker.job("report", "nightly", external_job_id="dc-1") as job:
                with job.step("render") as step:
                    logging.getLogger("app").info("rendering %d pages", 3)
                logging.getLogger("app").debug("below the handler's level")
            logging.getLogger("app").warning("outside any job")
            tracker.flush(30)
            rows = events(tracker.store)
        finally:
            close_shared(database_url)
        stored = {row["message"]: row for row in rows}
        assert set(stored) == {"rendering 3 pages", "outside any job"}
        inside = stored["rendering 3 pages"]
        assert (inside["job_id"], inside["step_id"], inside["external_job_id"]) == (
            job.id,
            step.id,
            "dc-1",
        )
        assert stored["outside any job"]["job_id"] is None

    def test_the_handler_is_bound_to_the_shared_tracker(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        configure({"class": "joblog.JobLogHandler", "url": url})
        try:
            (handler,) = [h for h in logging.getLogger().handlers if h.name == "joblog"]
            assert isinstance(handler, joblog.JobLogHandler)
            assert handler.tracker is joblog.Tracker.shared(url)
        finally:
            close_shared(url)

    def test_tracker_options_come_from_the_config(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        configure({"class": "joblog.JobLogHandler", "url": url, "external_id_policy": "allow"})
        try:
            assert joblog.Tracker.shared(url).external_id_policy == "allow"
        finally:
            close_shared(url)

    def test_other_options_for_the_same_url_are_refused(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        tracker = joblog.Tracker.shared(url, batch_size=100)
        try:
            with pytest.raises(ValueError, match="Unable to configure") as refused:
                configure({"class": "joblog.JobLogHandler", "url": url, "batch_size": 500})
            assert isinstance(refused.value.__cause__, joblog.ConfigError)
            assert "other options" in str(refused.value.__cause__)
            assert joblog.Tracker.shared(url) is tracker  # no options: the same tracker
            assert joblog.Tracker.shared(url, batch_size=100) is tracker
        finally:
            tracker.close()

    def test_an_unknown_tracker_option_is_a_clear_error(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        with pytest.raises(ValueError, match="Unable to configure") as refused:
            configure({"class": "joblog.JobLogHandler", "url": url, "batch_sise": 5})
        assert "batch_sise" in str(refused.value.__cause__)

    def test_two_handlers_for_one_url_share_its_tracker(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "web": {"class": "joblog.JobLogHandler", "url": url},
                    "worker": {"class": "joblog.JobLogHandler", "url": url, "level": "WARNING"},
                },
                "loggers": {
                    "two.web": {"handlers": ["web"], "level": "DEBUG", "propagate": False},
                    "two.worker": {"handlers": ["worker"], "level": "DEBUG", "propagate": False},
                },
            }
        )
        web = logging.getLogger("two.web")
        worker = logging.getLogger("two.worker")
        tracker = joblog.Tracker.shared(url)
        try:
            assert web.handlers[0] is not worker.handlers[0]
            assert {h.tracker for h in (*web.handlers, *worker.handlers)} == {tracker}  # type: ignore[attr-defined]
            with tracker.job("sync", "both"):
                web.info("from web")
                worker.info("worker info, below its handler's level")
                worker.error("from worker")
            tracker.flush(30)
            messages = sorted(row["message"] for row in events(tracker.store))
        finally:
            for logger in (web, worker):
                for handler in list(logger.handlers):
                    logger.removeHandler(handler)
            tracker.close()
        assert messages == ["from web", "from worker"]

    def test_a_job_of_another_tracker_is_left_to_that_trackers_handler(
        self, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        configure({"class": "joblog.JobLogHandler", "url": url, "unattributed": "drop"})
        own = joblog.Tracker(url)
        own.install_logging()
        try:
            with own.job("own", "tracker"):
                logging.getLogger("app").info("once")
            own.flush(30)
            rows = events(own.store)
        finally:
            own.close()
            close_shared(url)
        assert [row["message"] for row in rows] == ["once"]

    def test_a_closed_shared_tracker_is_replaced_and_the_handler_follows(
        self, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        configure({"class": "joblog.JobLogHandler", "url": url})
        first = joblog.Tracker.shared(url)
        first.close()
        second = joblog.Tracker.shared(url)
        try:
            assert second is not first
            with second.job("again", "after close"):
                logging.getLogger("app").info("stored by the new tracker")
            second.flush(30)
            rows = events(second.store)
        finally:
            second.close()
        assert [row["message"] for row in rows] == ["stored by the new tracker"]
        assert rows[0]["job_id"] is not None

    def test_flush_stores_what_is_queued(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        configure({"class": "joblog.JobLogHandler", "url": url, "flush_interval": 3600})
        tracker = joblog.Tracker.shared(url)
        try:
            logging.getLogger("app").info("queued")
            (handler,) = [h for h in logging.getLogger().handlers if h.name == "joblog"]
            handler.flush()
            rows = events(tracker.store)
        finally:
            tracker.close()
        assert [row["message"] for row in rows] == ["queued"]


@pytest.mark.usefixtures("restore_logging")
class TestOtherConfigFormats:
    def test_yaml(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        config = yaml.safe_load(
            textwrap.dedent(
                f"""
                version: 1
                disable_existing_loggers: false
                handlers:
                  joblog:
                    class: joblog.JobLogHandler
                    url: {url}
                    unattributed: drop
                    batch_size: 100
                root:
                  level: DEBUG
                  handlers: [joblog]
                """
            )
        )
        logging.config.dictConfig(config)
        tracker = joblog.Tracker.shared(url, batch_size=100)
        try:
            logging.getLogger("app").info("outside: dropped")
            with tracker.job("yaml", "configured"):
                logging.getLogger("app").info("inside: kept")
            tracker.flush(30)
            rows = events(tracker.store)
        finally:
            tracker.close()
        assert [row["message"] for row in rows] == ["inside: kept"]

    def test_ini_file_config(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        ini = tmp_path / "logging.ini"
        ini.write_text(
            textwrap.dedent(
                f"""
                [loggers]
                keys=root

                [handlers]
                keys=joblog

                [formatters]
                keys=

                [logger_root]
                level=DEBUG
                handlers=joblog

                [handler_joblog]
                class=joblog.JobLogHandler
                level=INFO
                args=({url!r},)
                kwargs={{"unattributed_level": "WARNING"}}
                """
            )
        )
        logging.config.fileConfig(ini, disable_existing_loggers=False)
        tracker = joblog.Tracker.shared(url)
        try:
            logging.getLogger("app").info("outside, below WARNING: dropped")
            logging.getLogger("app").warning("outside, WARNING: kept")
            with tracker.job("ini", "configured"):
                logging.getLogger("app").info("inside, INFO: kept")
                logging.getLogger("app").debug("inside, below the handler's INFO")
            tracker.flush(30)
            rows = events(tracker.store)
        finally:
            tracker.close()
        assert sorted(row["message"] for row in rows) == [
            "inside, INFO: kept",
            "outside, WARNING: kept",
        ]


class TestOneTrackerPerUrl:
    def test_threads_asking_at_the_same_instant_get_one_tracker(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
        barrier = threading.Barrier(8)

        def ask(n: int) -> object:
            barrier.wait(30)
            if n % 2:
                return joblog.JobLogHandler(url).tracker
            return joblog.Tracker.shared(url)

        with ThreadPoolExecutor(8) as pool:
            trackers = list(pool.map(ask, range(8)))
        try:
            assert len({id(tracker) for tracker in trackers}) == 1
        finally:
            joblog.Tracker.shared(url).close()


class TestConstruction:
    def test_a_given_tracker_is_used_as_is(self, tmp_path: Path) -> None:
        tracker = joblog.Tracker(f"sqlite:///{tmp_path / 'jobs.db'}")
        try:
            handler = joblog.JobLogHandler(tracker=tracker)
            assert handler.tracker is tracker
        finally:
            tracker.close()

    def test_a_url_and_a_tracker_together_are_refused(self, tmp_path: Path) -> None:
        tracker = joblog.Tracker(f"sqlite:///{tmp_path / 'jobs.db'}")
        try:
            with pytest.raises(TypeError, match="not both"):
                joblog.JobLogHandler("sqlite:///other.db", tracker=tracker)
            with pytest.raises(TypeError, match="not both"):
                joblog.JobLogHandler(tracker=tracker, batch_size=5)
        finally:
            tracker.close()

    def test_unattributed_must_be_keep_or_drop(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="keep"):
            joblog.JobLogHandler(f"sqlite:///{tmp_path / 'jobs.db'}", unattributed="store")

    @pytest.mark.parametrize(
        ("given", "number"), [(30, 30), ("WARNING", 30), ("warning", 30), ("25", 25)]
    )
    def test_levels_by_number_or_name(self, given: int | str, number: int) -> None:
        assert _level_number(given) == number

    @pytest.mark.parametrize("given", ["LOUD", "", "\x00", "-5"])
    def test_unknown_levels_are_refused(self, given: str) -> None:
        with pytest.raises(ValueError, match="unknown level"):
            _level_number(given)


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestProcessLifetime:
    def test_what_is_queued_is_stored_at_exit_without_close(self, tmp_path: Path) -> None:
        done = _run(
            """
            import logging, logging.config, joblog
            URL = "sqlite:///jobs.db"
            logging.config.dictConfig({"version": 1, "handlers": {"j": {
                "class": "joblog.JobLogHandler", "url": URL, "flush_interval": 3600}},
                "root": {"handlers": ["j"], "level": "INFO"}})
            with joblog.Tracker.shared(URL).job("exit", "no close"):
                logging.getLogger("app").info("last words")
            """,
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        tracker = joblog.Tracker(f"sqlite:///{tmp_path / 'jobs.db'}")
        try:
            rows = events(tracker.store)
        finally:
            tracker.close()
        assert [(row["message"], row["job_id"] is not None) for row in rows] == [
            ("last words", True)
        ]

    def test_a_forked_child_stores_through_its_own_tracker(self, tmp_path: Path) -> None:
        # Logging configured before fork(), as Celery's prefork pool and gunicorn do.
        done = _run(
            """
            import logging, logging.config, os, joblog
            URL = "sqlite:///jobs.db"
            logging.config.dictConfig({"version": 1, "handlers": {"j": {
                "class": "joblog.JobLogHandler", "url": URL}},
                "root": {"handlers": ["j"], "level": "INFO"}})
            parent = joblog.Tracker.shared(URL)
            logging.getLogger("app").info("parent, before fork")
            pid = os.fork()
            if pid == 0:
                logging.getLogger("app").info("child, outside any job")
                child = joblog.Tracker.shared(URL)
                assert child is not parent
                with child.job("forked", "child") as job:
                    logging.getLogger("app").info("child, inside its job")
                raise SystemExit(0)  # atexit flushes the child's tracker
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            logging.getLogger("app").info("parent, after fork")
            """,
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        tracker = joblog.Tracker(f"sqlite:///{tmp_path / 'jobs.db'}")
        try:
            rows = events(tracker.store)
        finally:
            tracker.close()
        stored = {row["message"]: row["job_id"] is not None for row in rows}
        assert stored == {
            "parent, before fork": False,
            "child, outside any job": False,
            "child, inside its job": True,
            "parent, after fork": False,
        }
        assert len(rows) == 4  # nothing the parent queued is stored twice
