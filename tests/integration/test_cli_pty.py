"""``joblog logs --follow`` under a real pseudo-terminal (pexpect), as an operator runs it:
a live job to its end on a database URL and through a live ``joblog serve``, and Ctrl-C
on a job that never ends."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pexpect
import pytest

import joblog
from joblog._ops import InsertEvents

ENTRY = "from joblog.cli import main; main()"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LINES = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, joblog.Tracker]]:
    """A SQLite database with a tracker, and an events-only ID (a job that never ends)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('pty') / 'pty.db'}"
    tracker = joblog.Tracker(url, flush_interval=0.01)
    tracker.install_logging()
    logging.getLogger("pty-test").setLevel(logging.INFO)
    now = datetime.now(UTC).replace(tzinfo=None)
    row = (None, None, "never-ends", "INFO", "a line", None, now, None, None)
    tracker.store.apply_batch([InsertEvents([row])])
    yield url, tracker
    tracker.close()


@pytest.fixture(scope="module")
def serve(world: tuple[str, joblog.Tracker]) -> Iterator[str]:
    """``joblog serve`` in its own process on the module's database; its base URL."""
    url, _tracker = world
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "serve", "--read-only", "--url", url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        found = None
        for _ in range(5):
            found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/", process.stdout.readline())
            if found:
                break
        assert found, "joblog serve printed no dashboard URL"
        yield found.group(1)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def follow(*args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-c", ENTRY, "logs", "--follow", *args],
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )


def live_job(tracker: joblog.Tracker) -> tuple[joblog.JobHandle, threading.Event, threading.Thread]:
    """A job started now; once ``go`` is set, another thread logs LINES lines in two steps
    and completes it."""
    job = tracker.start_job("failover", "live", steps=["snapshot", "boot"])
    tracker.flush(10)
    go = threading.Event()

    def produce() -> None:
        go.wait(60)
        log = logging.getLogger("pty-test")
        with job.activate():
            for name in ("snapshot", "boot"):
                with job.step(name):
                    for n in range(LINES // 2):
                        log.info("%s line %d", name, n)
                        time.sleep(0.02)
        job.complete()

    thread = threading.Thread(target=produce)
    thread.start()
    return job, go, thread


def run_to_end(child: pexpect.spawn, go: threading.Event, thread: threading.Thread) -> str:
    try:
        child.expect("following job")
        go.set()
        child.expect(pexpect.EOF)
    finally:
        go.set()
        thread.join(60)
        child.close()
    return ANSI.sub("", child.before or "")


def printed_lines(output: str) -> list[str]:
    return re.findall(r"INFO\s+((?:snapshot|boot) line \d+)", output)


class TestUnderAPseudoTerminal:
    def test_a_live_job_to_its_end_on_a_database_url(
        self, world: tuple[str, joblog.Tracker]
    ) -> None:
        url, tracker = world
        job, go, thread = live_job(tracker)
        child = follow(job.id, "--url", url)
        output = run_to_end(child, go, thread)
        assert child.exitstatus == 0, output
        assert printed_lines(output) == [
            f"{name} line {n}" for name in ("snapshot", "boot") for n in range(LINES // 2)
        ]
        assert f"job {job.id} completed" in output

    def test_a_live_job_to_its_end_through_joblog_serve(
        self, world: tuple[str, joblog.Tracker], serve: str
    ) -> None:
        _url, tracker = world
        job, go, thread = live_job(tracker)
        child = follow(job.id, "--server", serve, "--step", "boot")
        output = run_to_end(child, go, thread)
        assert child.exitstatus == 0, output
        assert printed_lines(output) == [f"boot line {n}" for n in range(LINES // 2)]

    @pytest.mark.parametrize("through", ["database", "server"])
    def test_ctrl_c_on_a_job_that_never_ends_exits_130_cleanly(
        self, world: tuple[str, joblog.Tracker], serve: str, through: str
    ) -> None:
        url, _tracker = world
        where = ["--url", url] if through == "database" else ["--server", serve]
        child = follow("never-ends", *where)
        try:
            child.expect("a line")
            child.expect("following job")
            child.sendintr()
            child.expect(pexpect.EOF)
        finally:
            child.close()
        output = child.before or ""
        assert child.exitstatus == 130, output
        assert "Traceback" not in output and "Aborted" not in output
