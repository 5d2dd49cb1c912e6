"""``joblog serve``: it serves, and says clearly why when it cannot."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from joblog.cli import main
from joblog.cli.serve import default_workers, serve_command


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


class TestServe:
    def test_serves_the_api_and_prints_the_dashboard_url(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        entry = "from joblog.cli import main; main()"
        command = [sys.executable, "-c", entry, "serve", "--read-only", "--url", url, "--port", "0"]
        command += ["--workers", "1"]  # TestWorkers starts several
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline(), process.stdout.readline()]
            match = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", "".join(lines))
            assert match, lines
            response = httpx.get(match.group(1) + "healthz", timeout=10)
            assert response.json() == {"status": "ok", "database": "ok"}
        finally:
            process.terminate()
            process.communicate(timeout=10)

    def test_port_in_use_is_a_clean_error(self, tmp_path: Path, busy_port: int) -> None:
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        result = CliRunner().invoke(
            main, ["serve", "--read-only", "--url", url, "--port", str(busy_port)]
        )
        assert result.exit_code == 1
        assert f"cannot listen on 127.0.0.1:{busy_port}" in result.output
        assert "Traceback" not in result.output

    def test_bad_url_is_a_clean_error(self) -> None:
        result = CliRunner().invoke(main, ["serve", "--read-only", "--url", "oracle://x/y"])
        assert result.exit_code == 1
        assert "unsupported database" in result.output

    def test_unreachable_database_is_a_clean_error(self) -> None:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
        result = CliRunner().invoke(main, ["serve", "--read-only", "--url", url])
        assert result.exit_code == 1
        assert "Error:" in result.output
        assert "Traceback" not in result.output


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class TestWorkers:
    @pytest.mark.parametrize("value", ["0", "-1", "65", "100000", "two", "1.5", ""])
    def test_bad_counts_are_a_clean_error(self, tmp_path: Path, value: str) -> None:
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        result = CliRunner().invoke(
            main, ["serve", "--read-only", "--url", url, "--port", "0", "--workers", value]
        )
        assert result.exit_code == 2
        assert "--workers" in result.output
        assert "Traceback" not in result.output

    def test_bad_count_from_the_environment(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        result = CliRunner().invoke(
            main, ["serve", "--read-only", "--url", url], env={"JOBLOG_WORKERS": "0"}
        )
        assert result.exit_code == 2
        assert "JOBLOG_WORKERS" in result.output or "--workers" in result.output

    def test_the_default_is_the_number_of_cores(self) -> None:
        option = next(p for p in serve_command.params if p.name == "workers")
        assert callable(option.default)
        assert option.default() == default_workers() >= 1

    def test_two_workers_share_the_port(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        entry = "from joblog.cli import main; main()"
        command = [
            sys.executable, "-c", entry, "serve", "--read-only", "--url", url, "--port", "0",
            "--workers", "2",
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline(), process.stdout.readline()]
            match = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", "".join(lines))
            assert match, lines
            workers: list[int] = []
            answered = 0
            deadline = time.monotonic() + 120  # spawned workers import and start on their own
            while time.monotonic() < deadline:
                # spawn's resource tracker is a child too; the workers answer requests.
                workers = _children(process.pid)
                try:
                    answered = httpx.get(match.group(1) + "healthz", timeout=10).status_code
                except httpx.HTTPError:
                    answered = 0
                if answered == 200 and len(workers) >= 2:
                    break
                time.sleep(0.2)
            assert answered == 200
            assert len(workers) >= 2
            with httpx.Client(base_url=match.group(1), timeout=60) as client:
                for _ in range(20):
                    assert client.get("api/v1/jobs").json()["jobs"] == []
                # prometheus_client's multiprocess mode: every worker's requests in one sum,
                # whichever worker answers the scrape.
                families = {
                    family.name: family
                    for family in text_string_to_metric_families(client.get("metrics").text)
                }
            served = sum(
                sample.value
                for sample in families["joblog_http_requests"].samples
                if sample.name == "joblog_http_requests_total"
                and sample.labels["route"] == "/api/v1/jobs"
            )
            assert served == 20
            # Process metrics would describe only the worker that answered: left out.
            assert "process_cpu_seconds" not in families
        finally:
            process.terminate()
            process.communicate(timeout=30)
        assert process.returncode is not None
