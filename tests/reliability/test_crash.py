"""A crash keeps its outcome: producers in real subprocesses that crash, are interrupted,
or exit without closing the tracker; the job's ending and every line must be stored."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import joblog
from joblog.storage.store import Store
from tests.reliability.conftest import Record

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import logging, sys, time
import joblog

tracker = joblog.Tracker(sys.argv[1])
tracker.install_logging()
logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("producer")
external = sys.argv[2]
"""

SCRIPTS = {
    "uncaught exception": """
steps = ["validate", "snapshot"]
with tracker.job("failover", "live", external_job_id=external, steps=steps) as job:
    with job.step("validate"):
        for n in range(500):
            log.info("line %d", n)
    with job.step("snapshot"):
        raise RuntimeError("snapshot failed: disk full")
""",
    "exit without close": """
with tracker.job("failover", "live", external_job_id=external) as job:
    with job.step("validate"):
        for n in range(500):
            log.info("line %d", n)
sys.exit(0)
""",
    "SIGINT": """
with tracker.job("failover", "live", external_job_id=external) as job:
    with job.step("validate"):
        for n in range(500):
            log.info("line %d", n)
        print("ready", flush=True)
        time.sleep(60)
""",
}


def run(script: str, url: str, external: str, *, interrupt: bool = False) -> int:
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(script)
    with subprocess.Popen(
        [sys.executable, "-c", code, url, external],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        if interrupt:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=120)
    assert "Traceback" not in err or "RuntimeError" in err or "KeyboardInterrupt" in err, err
    return process.returncode


@pytest.mark.parametrize("case", list(SCRIPTS))
def test_the_outcome_survives_the_process(
    database_url: str, case: str, reliability: Record
) -> None:
    Store(database_url).close()  # the schema, before two processes race to create it
    external = f"crash-{uuid.uuid4().hex[:8]}"
    code = run(SCRIPTS[case], database_url, external, interrupt=case == "SIGINT")
    tracker = joblog.Tracker(database_url)
    try:
        summary = tracker.resolve(external)
        events = tracker.store.reads.list_events(job_id=summary.job.id, limit=10_000)
        lines = [e.message for e in events if e.message.startswith("line ")]
        assert lines == [f"line {n}" for n in range(500)]
        steps = {s.name: s for s in summary.steps}
        if case == "uncaught exception":
            assert code == 1
            assert summary.job.status is joblog.JobStatus.FAILED
            assert steps["snapshot"].status is joblog.StepStatus.FAILED
            assert "disk full" in (steps["snapshot"].error_message or "")
            assert any("disk full" in e.message for e in events if e.level.value == "ERROR")
        elif case == "exit without close":
            assert code == 0
            assert summary.job.status is joblog.JobStatus.COMPLETED
        else:
            assert code != 0
            assert summary.job.status is joblog.JobStatus.CANCELLED
            assert steps["validate"].status is joblog.StepStatus.FAILED
    finally:
        tracker.close()
    reliability.injected = case
    reliability.measured = {"status": summary.job.status.value, "lines stored": len(lines)}
