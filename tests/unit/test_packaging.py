"""The core install works without the extras, and the client without SQLAlchemy.

Each test runs a fresh interpreter in which the extras' modules cannot be imported (a
meta-path finder refuses them, as if they were not installed), so what it proves is
the import graph of the package, not what this virtualenv happens to hold.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import joblog

ROOT = Path(__file__).resolve().parents[2]
SERVER_AND_DRIVERS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "psycopg",
    "pymysql",
    "matplotlib",
    "structlog",
)


def run_without(blocked: tuple[str, ...], code: str, tmp_path: Path) -> str:
    script = textwrap.dedent(
        f"""
        import sys

        BLOCKED = {set(blocked)!r}

        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, NotInstalled())
        """
    ) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_core_dependencies_are_the_library_and_cli_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("[")[0].split("=")[0] for dep in project["dependencies"]}
    assert names == {"sqlalchemy", "alembic", "click", "rich", "httpx"}
    extras = project["optional-dependencies"]
    assert {"server", "postgresql", "mysql", "bench"} <= set(extras)


def test_the_client_never_loads_sqlalchemy(tmp_path: Path) -> None:
    out = run_without(
        (*SERVER_AND_DRIVERS, "sqlalchemy", "alembic"),
        """
        import joblog.client
        from joblog.client import Client
        print("ok", Client.__name__)
        """,
        tmp_path,
    )
    assert out.split() == ["ok", "Client"]


def test_a_tracker_on_sqlite_needs_no_extra(tmp_path: Path) -> None:
    out = run_without(
        SERVER_AND_DRIVERS,
        """
        import logging
        import joblog

        tracker = joblog.Tracker("sqlite:///core.db")
        tracker.install_logging()
        with tracker.job("failover", "live", external_job_id="core-1", steps=["a"]) as job:
            with job.step("a"):
                logging.getLogger("core").info("inside")
        tracker.flush(10)
        summary = tracker.resolve("core-1")
        print(summary.job.status.value, summary.progress.percent)
        tracker.close()
        """,
        tmp_path,
    )
    assert out.split() == ["completed", "100"]


@pytest.mark.parametrize(
    ("command", "extra"), [("serve", "server"), ("demo", "server"), ("bench all", "bench")]
)
def test_server_commands_name_their_extra(tmp_path: Path, command: str, extra: str) -> None:
    out = run_without(
        SERVER_AND_DRIVERS,
        f"""
        from click.testing import CliRunner
        from joblog.cli import main

        result = CliRunner().invoke(main, {command.split()!r})
        print(result.exit_code)
        print(result.output)
        listing = CliRunner().invoke(main, ["--help"])
        print(listing.exit_code, "jobs" in listing.output, {command.split()[0]!r} in listing.output)
        """,
        tmp_path,
    )
    lines = out.strip().splitlines()
    assert lines[0] == "1"
    assert f"pip install 'joblog[{extra}]'" in out
    assert lines[-1] == "0 True True"


def test_read_commands_run_without_extras(tmp_path: Path) -> None:
    out = run_without(
        SERVER_AND_DRIVERS,
        """
        import joblog
        from click.testing import CliRunner
        from joblog.cli import main

        joblog.Tracker("sqlite:///core.db").close()  # read commands never create one
        result = CliRunner().invoke(main, ["jobs", "--url", "sqlite:///core.db", "--json"])
        print(result.exit_code, repr(result.output))
        """,
        tmp_path,
    )
    assert out.split() == ["0", "''"]


def test_logs_and_cancel_run_without_extras(tmp_path: Path) -> None:
    """On a database: logs (NDJSON), cancel; --follow on a database URL names its extra."""
    out = run_without(
        SERVER_AND_DRIVERS,
        """
        import json
        import joblog
        from click.testing import CliRunner
        from joblog.cli import main

        url = "sqlite:///core.db"
        tracker = joblog.Tracker(url)
        job = tracker.start_job("failover", "live", external_job_id="core-1")
        with job.activate():
            tracker.log_event("INFO", "hello")
        tracker.flush(10)
        logs = CliRunner().invoke(main, ["logs", "core-1", "--url", url, "--json"])
        print(logs.exit_code, json.loads(logs.stdout)["job_id"] == job.id)
        cancel = CliRunner().invoke(main, ["cancel", "core-1", "--url", url])
        print(cancel.exit_code)
        follow = CliRunner().invoke(main, ["logs", "core-1", "--url", url, "--follow"])
        print(follow.exit_code, "pip install 'joblog[server]'" in follow.output)
        job.complete()
        tracker.close()
        """,
        tmp_path,
    )
    assert out.split() == ["0", "True", "0", "3", "True"]


def test_following_through_a_server_needs_no_extra(tmp_path: Path) -> None:
    from joblog.api.app import create_app
    from joblog.api.settings import ApiSettings
    from tests.support.api import LiveServer

    url = f"sqlite:///{tmp_path / 'served.db'}"
    with joblog.Tracker(url) as tracker, tracker.job("failover", "live") as job:
        tracker.log_event("INFO", "served line")
    with LiveServer(create_app(url, settings=ApiSettings())) as server:
        out = run_without(
            SERVER_AND_DRIVERS,
            f"""
            from click.testing import CliRunner
            from joblog.cli import main

            args = ["logs", {job.id!r}, "--follow", "--server", {server.url!r}]
            result = CliRunner().invoke(main, args)
            print(result.exit_code, result.stdout.split()[-2:])
            """,
            tmp_path,
        )
    assert out.split() == ["0", "['served',", "'line']"]
