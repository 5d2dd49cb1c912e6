"""docs/RECIPES.md's code runs verbatim and does what the text says.

A python block whose first line is ``# name.py`` is that file. Celery runs as a real
worker (prefork pool, Kombu's filesystem transport, so no broker service is needed), the
FastAPI app through its ASGI interface, the pool script as a program.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from anyio.from_thread import BlockingPortal, start_blocking_portal

import joblog
from joblog.storage import schema
from tests.support.db import events, rows

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "docs" / "RECIPES.md"


def recipe_files(section: str) -> dict[str, str]:
    """The ``# name.py`` python blocks of the ``## section...`` part of RECIPES.md."""
    text = RECIPES.read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    (part,) = [p for p in parts if p.startswith(section)]
    files = {}
    for block in re.findall(r"```python\n(.*?)```", part, re.S):
        first, _, _ = block.partition("\n")
        match = re.fullmatch(r"# (\w+\.py)", first.strip())
        assert match, f"a block in {section!r} does not start with '# name.py': {first!r}"
        files[match.group(1)] = block
    assert files, f"no python block in {section!r}"
    return files


def write_files(files: dict[str, str], where: Path) -> None:
    for name, code in files.items():
        (where / name).write_text(code)


def clean_env(where: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLOG_", "CELERY_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(where), str(ROOT / "src")])
    return env


def open_tracker(where: Path) -> joblog.Tracker:
    return joblog.Tracker(f"sqlite:///{where / 'jobs.db'}")


class TestCeleryRecipe:
    @pytest.fixture
    def worker(self, tmp_path: Path) -> Iterator[Path]:
        write_files(recipe_files("Celery"), tmp_path)
        broker, done = tmp_path / "broker", tmp_path / "processed"
        broker.mkdir()
        done.mkdir()
        (tmp_path / "celeryconfig.py").write_text(
            "broker_url = 'filesystem://'\n"
            f"broker_transport_options = {{'data_folder_in': {str(broker)!r}, "
            f"'data_folder_out': {str(broker)!r}, 'processed_folder': {str(done)!r}, "
            "'store_processed': False, 'polling_interval': 0.1}\n"
            "worker_enable_remote_control = False\n"
        )
        log_file = (tmp_path / "worker.log").open("w")
        command = "celery -A tasks worker --pool prefork --concurrency 2 --loglevel INFO"
        quiet = "--without-mingle --without-gossip --without-heartbeat"  # no broadcasts
        process = subprocess.Popen(
            [sys.executable, "-m", *command.split(), *quiet.split()],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield tmp_path
        finally:
            process.send_signal(signal.SIGQUIT)  # cold shutdown: the checks are done
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            log_file.close()

    def test_each_task_is_a_job_found_by_its_task_id(self, worker: Path) -> None:
        sent = subprocess.run(
            [sys.executable, "send.py"],
            cwd=worker,
            env=clean_env(worker),
            capture_output=True,
            text=True,
            timeout=180,
        )
        worker_log = (worker / "worker.log").read_text()
        assert sent.returncode == 0, sent.stderr + worker_log
        (intro_id, intro_status, intro_done), (broken_id, broken_status, broken_done) = [
            line.split() for line in sent.stdout.splitlines()
        ]
        assert (intro_status, intro_done) == ("completed", "2")
        assert (broken_status, broken_done) == ("failed", "1")

        tracker = open_tracker(worker)
        try:
            intro = tracker.resolve(intro_id)
            broken = tracker.resolve(broken_id)
            stored = events(tracker.store)
        finally:
            tracker.close()
        assert intro.job.external_job_id == intro_id
        assert (intro.job.job_type, intro.job.operation) == ("celery", "tasks.convert")
        assert [(s.name, s.status.value) for s in intro.steps] == [
            ("download", "completed"),
            ("encode", "completed"),
        ]
        assert broken.job.error_message == "ValueError: cannot decode broken"
        by_message = {row["message"]: row for row in stored}
        downloading = by_message["downloading intro"]
        assert (downloading["job_id"], downloading["step_id"]) == (
            intro.job.id,
            intro.steps[0].id,
        )
        assert by_message["encoded intro"]["step_id"] == intro.steps[1].id
        failure = by_message["job failed: ValueError: cannot decode broken"]
        assert failure["job_id"] == broken.job.id
        assert "Traceback" in failure["attrs"]["exception"]
        # The worker's own lines (outside any task) are not stored.
        assert all(row["job_id"] is not None for row in stored), worker_log


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Client:
    """Calls an ASGI app from this thread (or several) through httpx on a portal."""

    def __init__(self, app: Any, portal: BlockingPortal) -> None:
        self.app = app
        self._portal = portal
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://recipe.test")

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(lambda: self._client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(lambda: self._client.post(url, **kwargs))


class TestFastApiRecipe:
    @pytest.fixture
    def client(self, in_tmp: Path) -> Iterator[Client]:
        (code,) = recipe_files("FastAPI").values()
        namespace: dict[str, Any] = {"__name__": "app"}
        exec(compile(code, "app.py", "exec"), namespace)
        tracker: joblog.Tracker = namespace["tracker"]
        try:
            with start_blocking_portal() as portal:
                client = Client(namespace["app"], portal)
                yield client
                portal.call(client._client.aclose)
        finally:
            tracker.close()

    def summary(self, any_id: str) -> joblog.JobSummary:
        tracker = joblog.Tracker.shared("sqlite:///jobs.db", external_id_policy="allow")
        return tracker.resolve(any_id)

    def test_a_request_naming_an_id_runs_as_that_job(self, client: Client) -> None:
        answer = client.post("/exports/q3", headers={"X-Job-ID": "gui-export-1"})
        assert answer.status_code == 200
        summary = self.summary("gui-export-1")
        assert (summary.job.status.value, summary.job.operation) == ("completed", "POST")
        assert summary.job.metadata == {"path": "/exports/q3"}
        assert [s.name for s in summary.steps] == ["query", "write"]
        (event,) = [e for e in summary.recent_events if e.message == "querying q3"]
        assert event.step_id == summary.steps[0].id

    def test_an_exception_fails_the_job_with_its_traceback(self, client: Client) -> None:
        answer = client.post("/exports/broken", headers={"X-Job-ID": "gui-export-2"})
        assert answer.status_code == 500
        summary = self.summary("gui-export-2")
        assert summary.job.status.value == "failed"
        assert summary.job.error_message == "RuntimeError: disk full"
        assert [s.status.value for s in summary.steps] == ["completed", "failed"]

    def test_a_5xx_answer_fails_the_job(self, client: Client) -> None:
        app = client.app
        assert hasattr(app, "get")

        @app.get("/unavailable")
        async def unavailable() -> Any:
            from fastapi.responses import JSONResponse

            return JSONResponse({"error": "later"}, status_code=503)

        assert client.get("/unavailable", headers={"X-Job-ID": "gui-3"}).status_code == 503
        summary = self.summary("gui-3")
        assert (summary.job.status.value, summary.job.error_message) == (
            "failed",
            "answered HTTP 503",
        )

    def test_without_the_header_no_job_is_made(self, client: Client, in_tmp: Path) -> None:
        assert client.get("/openapi.json").status_code == 200
        tracker = joblog.Tracker.shared("sqlite:///jobs.db", external_id_policy="allow")
        tracker.flush(30)
        assert rows(tracker.store, schema.job_tracking) == []

    @pytest.mark.parametrize(
        "header",
        [b"x" * 256, b"a\x01b", b"tab\there", "caf\u00e9\u0085".encode("latin-1")],
        ids=["too long", "control", "tab", "latin-1 NEL"],
    )
    def test_a_header_that_cannot_be_an_id_gets_400(self, client: Client, header: bytes) -> None:
        answer = client.post("/exports/q3", headers=[(b"X-Job-ID", header)])
        assert answer.status_code == 400
        tracker = joblog.Tracker.shared("sqlite:///jobs.db", external_id_policy="allow")
        tracker.flush(30)
        assert rows(tracker.store, schema.job_tracking) == []

    def test_hostile_paths_are_kept_as_metadata(self, client: Client) -> None:
        answer = client.post("/exports/%F0%9F%92%A5%00%3Cb%3E", headers={"X-Job-ID": "gui-4"})
        assert answer.status_code == 200
        summary = self.summary("gui-4")
        assert summary.job.status.value == "completed"
        assert summary.job.metadata is not None
        assert "\U0001f4a5" in summary.job.metadata["path"]

    def test_concurrent_requests_keep_their_own_jobs(self, client: Client) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda n: client.post(f"/exports/r{n}", headers={"X-Job-ID": f"par-{n}"}),
                    range(16),
                )
            )
        assert {a.status_code for a in answers} == {200}
        for n in range(16):
            summary = self.summary(f"par-{n}")
            messages = [e.message for e in summary.recent_events]
            assert messages == [f"querying r{n}"]


class TestThreadPoolRecipe:
    def test_the_pools_lines_are_stored_with_the_job_and_step(self, tmp_path: Path) -> None:
        files = recipe_files("concurrent.futures")
        write_files(files, tmp_path)
        done = subprocess.run(
            [sys.executable, "pool.py"],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["thumb-a.png", "thumb-b.png", "thumb-c.png"]
        tracker = open_tracker(tmp_path)
        try:
            summary = tracker.resolve("batch-42")
            stored = events(tracker.store, schema.log_events.c.job_id == summary.job.id)
        finally:
            tracker.close()
        assert summary.job.status.value == "completed"
        (step,) = summary.steps
        assert sorted(row["message"] for row in stored) == [
            "thumbnail of a.png",
            "thumbnail of b.png",
            "thumbnail of c.png",
        ]
        assert {row["step_id"] for row in stored} == {step.id}


class TestLoggingYaml:
    def test_the_yaml_config_stores_job_records_only(
        self, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (text,) = re.findall(r"```yaml\n(.*?)```", RECIPES.read_text(), re.S)
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", [])
        monkeypatch.setattr(root, "level", root.level)
        logging.config.dictConfig(yaml.safe_load(text))
        tracker = joblog.Tracker.shared("sqlite:///jobs.db")
        try:
            logging.getLogger("app").info("outside any job: dropped")
            with tracker.job("yaml", "recipe") as job:
                logging.getLogger("app").info("inside the job")
                logging.getLogger("app").debug("below INFO")
            tracker.flush(30)
            stored = events(tracker.store)
            # Made with the YAML's tracker option: the same options give the same tracker.
            assert joblog.Tracker.shared("sqlite:///jobs.db", batch_size=500) is tracker
        finally:
            for handler in root.handlers:
                handler.close()
            tracker.close()
        assert [(row["message"], row["job_id"]) for row in stored] == [("inside the job", job.id)]


def test_every_python_block_is_tested() -> None:
    text = RECIPES.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    tested = {
        name
        for section in ("Celery", "FastAPI", "concurrent.futures")
        for name in recipe_files(section)
    }
    assert len(blocks) == len(tested) == 5
