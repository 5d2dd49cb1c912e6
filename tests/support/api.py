"""Helpers for the API tests: an in-process client, a real uvicorn server, an SSE reader and
a producer that runs in another process."""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from tests.conftest import MYSQL_ADMIN_URL, PG_ADMIN_URL, require_backend


class ApiClient:
    """A synchronous client for an app, in process (httpx's ASGI transport on a portal)."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self.app = app
        self._portal = portal
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://joblog.test"
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self._client.request, method, url, **kwargs)
        return self._portal.call(call)

    def clear_cookies(self) -> None:
        """Forget the cookies responses set (tests send the ones they mean explicitly)."""
        self._client.cookies.clear()

    def close(self) -> None:
        self._portal.call(self._client.aclose)


@contextlib.contextmanager
def api_client(app: FastAPI) -> Iterator[ApiClient]:
    with start_blocking_portal() as portal:
        client = ApiClient(app, portal)
        try:
            yield client
        finally:
            client.close()
            app.state.store.close()  # no lifespan runs under the ASGI transport


@contextlib.contextmanager
def temporary_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Like ``make_database`` but usable from a module-scoped fixture: a new empty
    database on ``backend``, dropped on exit. Read-only test classes share one."""
    require_backend(backend)
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'joblog-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"joblog_t_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL if backend == "postgresql" else MYSQL_ADMIN_URL
    quoted = f'"{name}"' if backend == "postgresql" else f"`{name}`"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            suffix = "" if backend == "postgresql" else " CHARACTER SET utf8mb4"
            conn.execute(sa.text(f"CREATE DATABASE {quoted}{suffix}"))
        yield sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
        engine.dispose()


def backend_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Body of a module-scoped fixture parameterised over the backends."""
    with temporary_database(str(request.param), tmp_path_factory.mktemp("db")) as url:
        yield url


class LiveServer:
    """uvicorn serving ``app`` on a free local port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@dataclass
class SseEvent:
    event: str
    id: str | None
    data: Any


def read_sse(response: httpx.Response) -> Iterator[SseEvent]:
    """Parse a text/event-stream body into events (comments and ``retry:`` skipped)."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield SseEvent(
                    fields.get("event", "message"), fields.get("id"), json.loads("\n".join(data))
                )
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


PRODUCER = r"""
import logging, sys, time
import joblog

url, external_id = sys.argv[1], sys.argv[2]
steps, lines, delay = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
tracker = joblog.Tracker(url, flush_interval=0.02)
tracker.install_logging()
logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("producer")
names = [f"step-{n}" for n in range(1, steps + 1)]
scope = tracker.job("failover", "live", external_job_id=external_id, steps=names)
with scope as job:
    tracker.flush(30)
    print("ready", job.id, flush=True)
    sys.stdin.readline()
    for name in names:
        with job.step(name):
            for line in range(lines):
                log.info("%s line %d", name, line)
                time.sleep(delay)
tracker.close()
print("done", flush=True)
"""


class Producer:
    """A job run by another process: it starts the job, says ``ready``, waits for ``go()``."""

    def __init__(self, url: str, external_id: str, *, steps: int, lines: int, delay: float):
        self.process = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, url, external_id, str(steps), str(lines), str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self.close()
            raise RuntimeError(f"producer failed to start: {ready}")
        self.job_id = ready[1]

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)
