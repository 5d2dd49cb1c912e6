"""The README's Python quickstart runs verbatim, and does what it says."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no python block"
    return str(blocks[0])


def test_the_quickstart_runs_verbatim_and_stores_its_log_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", quickstart()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["external_job_id", "completed", "100"]
    with sqlite3.connect(tmp_path / "joblog.db") as db:
        messages = [row[0] for row in db.execute("SELECT message FROM log_events")]
        job = db.execute("SELECT status, context_id, owner FROM job_tracking").fetchall()
    assert "validating pgtest2" in messages
    assert job == [("completed", "vm-pgtest2", "alice")]
