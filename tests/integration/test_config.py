"""Configuration: every ``serve`` option from flags, ``JOBLOG_*`` or a TOML file, with clear
errors; ``create_app()`` reads the same variables; quiet migrations."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from joblog import Tracker
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.cli import main
from joblog.exceptions import ConfigError

TOKEN = "write-token-0123456789abcdef"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run ``joblog serve`` up to uvicorn, keeping the app's settings instead of serving."""
    seen: dict[str, Any] = {}

    def run(self: uvicorn.Server, sockets: Any = None) -> None:
        seen["settings"] = self.config.app.state.settings
        seen["store"] = self.config.app.state.store

    monkeypatch.setattr(uvicorn.Server, "run", run)
    for name in list(os.environ):
        if name.startswith("JOBLOG_"):
            monkeypatch.delenv(name)
    return seen


def serve(args: list[str], env: dict[str, str] | None = None) -> Any:
    # One process: the captured app is built here, not in a worker process.
    workers = [] if "--workers" in args or "JOBLOG_WORKERS" in (env or {}) else ["--workers", "1"]
    return CliRunner().invoke(main, ["serve", "--port", "0", *workers, *args], env=env)


def write_config(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "joblog.toml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


class TestPrecedence:
    def test_file_sets_options(self, tmp_path: Path, captured: dict[str, Any]) -> None:
        url = f"sqlite:///{tmp_path / 'file.db'}"
        config = write_config(
            tmp_path,
            f'url = "{url}"\nread_only = true\nreap_interval = 7\nretention = "30d"\n'
            "worker-threads = 3\npoll_interval = 0.5\n",
        )
        result = serve(["--config", config])
        assert result.exit_code == 0, result.output
        settings: ApiSettings = captured["settings"]
        assert (settings.write_api, settings.reap_interval) == (False, 7.0)
        assert settings.retention == timedelta(days=30)
        assert (settings.worker_threads, settings.poll_interval) == (3, 0.5)
        assert str(captured["store"].url).endswith("file.db")

    def test_environment_beats_file_and_flag_beats_environment(
        self, tmp_path: Path, captured: dict[str, Any]
    ) -> None:
        config = write_config(tmp_path, "read_only = true\nworker_threads = 3\nreap_interval = 9\n")
        env = {
            "JOBLOG_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}",
            "JOBLOG_WORKER_THREADS": "4",
            "JOBLOG_REAP_INTERVAL": "5",
        }
        result = serve(["--config", config, "--reap-interval", "11"], env=env)
        assert result.exit_code == 0, result.output
        assert captured["settings"].worker_threads == 4
        assert captured["settings"].reap_interval == 11.0

    def test_config_path_from_the_environment(
        self, tmp_path: Path, captured: dict[str, Any]
    ) -> None:
        config = write_config(tmp_path, "read_only = true\nexternal_id_policy = 'allow'\n")
        env = {"JOBLOG_CONFIG": config, "JOBLOG_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
        assert serve([], env=env).exit_code == 0
        assert captured["settings"].external_id_policy == "allow"

    def test_every_option_has_a_variable(self, tmp_path: Path, captured: dict[str, Any]) -> None:
        env = {
            "JOBLOG_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}",
            "JOBLOG_READ_ONLY": "true",
            "JOBLOG_MAX_BODY_BYTES": "4096",
            "JOBLOG_SESSION_MAX_AGE": "2h",
            "JOBLOG_PRUNE_INTERVAL": "10m",
            "JOBLOG_RETENTION": "1d",
        }
        assert serve([], env=env).exit_code == 0
        settings = captured["settings"]
        assert (settings.max_body_bytes, settings.session_max_age) == (4096, 7200)
        assert (settings.prune_interval, settings.write_api) == (600.0, False)

    def test_tokens_from_the_environment_open_the_write_api(
        self, tmp_path: Path, captured: dict[str, Any]
    ) -> None:
        env = {
            "JOBLOG_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
            "JOBLOG_WRITE_TOKENS": TOKEN,
        }
        assert serve([], env=env).exit_code == 0
        assert captured["settings"].write_api and captured["settings"].write_tokens == (TOKEN,)


class TestBadConfiguration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("port = 70000\n", "port = 70000"),
            ("port = -1\n", "not in the range"),
            ("port = true\n", "port must be a string or a number"),
            ("reap_interval = nan\n", "reap_interval must be a finite number"),
            ("reap_interval = inf\n", "reap_interval must be a finite number"),
            ("worker_threads = 99999999999999999999\n", "not in the range"),
            ("worker_threads = 1000\n", "not in the range"),
            ("retention = 'forever'\n", "not a duration"),
            ("retention = '-3d'\n", "positive duration"),
            ("external_id_policy = 'maybe'\n", "external_id_policy"),
            ("read_only = 'yes'\n", "read_only must be true or false"),
            ("colour = 'blue'\n", "unknown key 'colour'"),
            ("config = 'other.toml'\n", "unknown key 'config'"),
            ("[serve]\nport = 1\n", "unknown key 'serve'"),
            ("host = ['a', 'b']\n", "must be a string or a number, not list"),
            ("port = \n", "not valid TOML"),
            ("port = 1\nport = 2\n", "not valid TOML"),
            ('host = "a\\u0000b"\n', "host holds a control character"),
            ("k\x00 = 1\n", "not valid TOML"),
        ],
    )
    def test_clear_error(
        self, tmp_path: Path, captured: dict[str, Any], text: str, expected: str
    ) -> None:
        config = write_config(tmp_path, text)
        result = serve(["--read-only", "--config", config])
        assert result.exit_code == 2, result.output
        assert expected in result.output
        assert config in result.output
        assert "Traceback" not in result.output
        assert "settings" not in captured

    def test_invalid_utf8(self, tmp_path: Path, captured: dict[str, Any]) -> None:
        result = serve(["--read-only", "--config", write_config(tmp_path, b"host = '\xff'\n")])
        assert result.exit_code == 2 and "not UTF-8" in result.output

    def test_missing_file(self, tmp_path: Path, captured: dict[str, Any]) -> None:
        result = serve(["--read-only", "--config", str(tmp_path / "nothing.toml")])
        assert result.exit_code == 2 and "cannot read it" in result.output

    def test_huge_file(self, tmp_path: Path, captured: dict[str, Any]) -> None:
        result = serve(["--read-only", "--config", write_config(tmp_path, "#" * 2_000_000)])
        assert result.exit_code == 2 and "larger than 1 MiB" in result.output

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("JOBLOG_PORT", "http"),
            ("JOBLOG_WORKER_THREADS", "0"),
            ("JOBLOG_REAP_INTERVAL", "-5"),
            ("JOBLOG_READ_ONLY", "perhaps"),
            ("JOBLOG_RETENTION", "1e400d"),
        ],
    )
    def test_bad_variable_names_its_option(
        self, captured: dict[str, Any], variable: str, value: str
    ) -> None:
        result = CliRunner().invoke(main, ["serve"], env={variable: value})
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--" in result.output
        assert "settings" not in captured


class TestCreateAppReadsTheEnvironment:
    def test_database_and_settings(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOBLOG_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
        monkeypatch.setenv("JOBLOG_READ_ONLY", "yes")
        monkeypatch.setenv("JOBLOG_WORKER_THREADS", "5")
        monkeypatch.setenv("JOBLOG_REAP_INTERVAL", "30")
        monkeypatch.setenv("JOBLOG_RETENTION", "7d")
        app = create_app()
        try:
            settings = app.state.settings
            assert str(app.state.store.url).endswith("app.db")
            assert (settings.write_api, settings.worker_threads) == (False, 5)
            assert (settings.reap_interval, settings.retention) == (30.0, timedelta(days=7))
            assert not any(
                route.path == "/api/v1/jobs" and "POST" in route.methods
                for route in app.routes
                if hasattr(route, "methods")
            )
        finally:
            app.state.store.close()

    @pytest.mark.parametrize(
        ("variable", "value", "expected"),
        [
            ("JOBLOG_WORKER_THREADS", "lots", "JOBLOG_WORKER_THREADS='lots': not an integer"),
            ("JOBLOG_WORKER_THREADS", "65", "worker_threads must be between 1 and 64"),
            ("JOBLOG_POLL_INTERVAL", "nan", "not a finite number"),
            ("JOBLOG_READ_ONLY", "maybe", "use true or false"),
            ("JOBLOG_RETENTION", "\x00", "not a duration"),
            ("JOBLOG_EXTERNAL_ID_POLICY", "sometimes", "external_id_policy must be"),
            ("JOBLOG_WRITE_TOKENS", "short", "characters"),
        ],
    )
    def test_bad_value_is_a_config_error(self, variable: str, value: str, expected: str) -> None:
        with pytest.raises(ConfigError) as caught:
            ApiSettings.from_env({variable: value})
        assert expected in str(caught.value)

    def test_explicit_arguments_win(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOBLOG_REAP_INTERVAL", "30")
        app = create_app(f"sqlite:///{tmp_path / 'x.db'}", reap_interval=3)
        try:
            assert app.state.settings.reap_interval == 3
        finally:
            app.state.store.close()


class TestLogging:
    def test_tracker_keeps_alembic_out_of_the_users_log(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG):
            tracker = Tracker(f"sqlite:///{tmp_path / 'quiet.db'}")
            tracker.close()
        assert [r for r in caplog.records if r.name.startswith("alembic")] == []

    def test_serve_logging_leaves_the_joblog_logger_to_the_tracker(self) -> None:
        # "joblog" carries the tracker's step-failure records and joblog.demo's workload:
        # serve's own handler must not cut it off from the root logger's job handler.
        from joblog.cli.serve import SERVER_LOGGERS, _configure_logging

        root = logging.getLogger("joblog")
        saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in SERVER_LOGGERS]
        try:
            _configure_logging("info", False)
            assert root.propagate and root.level == logging.NOTSET
            assert logging.getLogger("joblog.api").isEnabledFor(logging.INFO)
            # A logger below "joblog" that no other code configures (the demo sets its own
            # to DEBUG in-process) inherits the root's level, not serve's.
            assert logging.getLogger("joblog.test_config.workload").getEffectiveLevel() == (
                logging.getLogger().getEffectiveLevel()
            )
        finally:
            for logger, level in saved:
                logger.handlers = [h for h in logger.handlers if not hasattr(h, "joblog_serve")]
                logger.setLevel(level)
                logger.propagate = True

    def test_fresh_process_with_basic_config_at_info(self, tmp_path: Path) -> None:
        code = (
            "import logging, sys; logging.basicConfig(level=logging.INFO);"
            "import joblog; joblog.Tracker(sys.argv[1]).close(); print('ok')"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, f"sqlite:///{tmp_path / 'fresh.db'}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.strip() == "ok", done.stderr
        assert "alembic" not in done.stderr
        assert "Running upgrade" not in done.stderr

    def test_a_level_the_user_chose_is_kept(self, tmp_path: Path) -> None:
        code = (
            "import logging, sys; logging.basicConfig(level=logging.INFO);"
            "logging.getLogger('alembic').setLevel(logging.INFO);"
            "import joblog; joblog.Tracker(sys.argv[1]).close()"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, f"sqlite:///{tmp_path / 'loud.db'}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Running upgrade" in done.stderr

    def _serve_stderr(self, tmp_path: Path, *extra: str) -> str:
        url = f"sqlite:///{tmp_path / 'serve.db'}"
        entry = "from joblog.cli import main; main()"
        command = [sys.executable, "-c", entry, "serve", "--read-only", "--url", url, "--port", "0"]
        process = subprocess.Popen(
            [*command, "--reap-interval", "1", "--retention", "30d", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        lines: list[str] = []
        try:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                if "Application startup complete" in line:
                    break
        finally:
            process.terminate()
            process.communicate(timeout=20)
        return "".join(lines)

    def test_serve_logs_its_own_lines_to_stderr(self, tmp_path: Path) -> None:
        err = self._serve_stderr(tmp_path)
        assert " INFO    joblog.serve: serving sqlite:///" in err
        assert " INFO    joblog.api: reaper: every 1s" in err
        assert " INFO    joblog.api: pruning: log events older than 30 days" in err
        assert "Running upgrade" not in err

    def test_serve_verbose_shows_the_migrations(self, tmp_path: Path) -> None:
        err = self._serve_stderr(tmp_path, "-v")
        assert "INFO    alembic.runtime.migration: Running upgrade" in err
