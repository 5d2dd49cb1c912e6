"""Producer processes: a SIGKILL mid-job, and many writers on one SQLite file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from joblog import JobStatus, StepStatus
from joblog.storage.store import Store
from tests.reliability.conftest import Record
from tests.support.db import events

ROOT = Path(__file__).resolve().parents[2]


def run_producer(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.producer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


class TestProducerCrash:
    def test_flushed_events_survive_a_sigkill_and_the_job_is_reaped(
        self, database_url: str, reliability: Record
    ) -> None:
        reliability.injected = "SIGKILL of the producer process mid-job, after a flush"
        Store(database_url).close()  # schema first, so the child only writes
        child = run_producer("crash", database_url, "300")
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("flushed "), child.stderr.read() if child.stderr else line
            job_id = line.split()[1]
            time.sleep(0.3)
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=10)  # reap it and close its pipes
        store = Store(database_url)
        try:
            flushed = [r for r in events(store) if r["message"].startswith("flushed ")]
            assert sorted(r["message"] for r in flushed) == sorted(
                f"flushed {i}" for i in range(300)
            )
            assert {r["job_id"] for r in flushed} == {job_id}
            job = store.reads.get_job(job_id)
            assert job is not None and job.status is JobStatus.RUNNING
            time.sleep(1.5)  # heartbeats were every 0.2 s; none since the kill
            assert store.housekeeping.reap_abandoned(heartbeat_timeout=1.0) == [job_id]
            job = store.reads.get_job(job_id)
            assert job is not None and job.status is JobStatus.FAILED
            assert (job.error_message or "").startswith("abandoned")
            assert [s.status for s in store.reads.steps_of(job_id)] == [StepStatus.FAILED]
            reliability.measured = {
                "flushed events present": f"{len(flushed)}/300",
                "job after reap": f"{job.status.value} ({job.error_message})",
            }
        finally:
            store.close()


@pytest.mark.slow
class TestManySqliteWriters:
    def test_four_processes_of_four_threads_lose_nothing(
        self, make_database: object, reliability: Record
    ) -> None:
        reliability.backend = "sqlite"
        reliability.injected = "4 processes x 4 threads logging into one SQLite file"
        url = make_database("sqlite")  # type: ignore[operator]
        processes, threads, per_thread = 4, 4, 1000
        children = [
            run_producer("threads", url, str(threads), str(per_thread), f"p{n}")
            for n in range(processes)
        ]
        reports = []
        for child in children:
            out, err = child.communicate(timeout=240)
            assert child.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
        assert [r["errors"] for r in reports] == [[]] * processes  # no "database is locked"
        assert sum(r["dropped"] + r["failed"] for r in reports) == 0
        store = Store(url)
        try:
            messages = [r["message"] for r in events(store) if r["message"].startswith("event ")]
            assert len(messages) == processes * threads * per_thread
            assert len(set(messages)) == len(messages)
            jobs = store.reads.list_jobs(limit=100)
            assert len(jobs) == processes * threads
            assert {j.status for j in jobs} == {JobStatus.COMPLETED}
            reliability.measured = {
                "events stored": f"{len(messages)}/{processes * threads * per_thread}",
                "errors seen by the application": 0,
                "writer retries (busy database)": sum(r["retries"] for r in reports),
            }
        finally:
            store.close()
