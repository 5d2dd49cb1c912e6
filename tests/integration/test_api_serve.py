"""``joblog serve``: it serves, and says clearly why when it cannot."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from joblog.cli import main


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
