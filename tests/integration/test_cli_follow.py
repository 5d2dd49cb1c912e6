"""``joblog logs --follow``: to the job's end on a database, through a server across a
dropped connection, and against servers that answer garbage."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import joblog
from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.cli import follow as follow_module
from joblog.cli import main as cli
from joblog.cli import server as cli_server
from joblog.cli import sse
from joblog.cli.follow import EXIT_TROUBLE
from joblog.storage import schema
from tests.conftest import BACKENDS
from tests.support.api import LiveServer, backend_database
from tests.support.faultproxy import FaultProxy

ENTRY = "from joblog.cli import main; main()"


def follow(*args: str) -> Result:
    return CliRunner().invoke(cli, ["logs", "--follow", *args])


def lines_of(result: Result) -> list[str]:
    """The messages of printed log lines (after ``HH:MM:SS.ffffff LEVEL``)."""
    return [line.split(None, 2)[2] for line in result.stdout.splitlines()]


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def tracker(url: str) -> Iterator[joblog.Tracker]:
    tracker = joblog.Tracker(url, flush_interval=0.01)
    tracker.install_logging()
    logging.getLogger("follow-test").setLevel(logging.INFO)
    yield tracker
    tracker.close()


log = logging.getLogger("follow-test")


@pytest.fixture
def following(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once an in-process follow has printed its tail and says "following job": a
    producer that waits for it writes only what the follow must read live."""
    started = threading.Event()
    note = follow_module.Follower._note

    def noted(self: follow_module.Follower, message: str) -> None:
        note(self, message)
        if message.startswith("following job"):
            started.set()

    monkeypatch.setattr(follow_module.Follower, "_note", noted)
    return started


class TestOnADatabase:
    @pytest.mark.parametrize(("ending", "code"), [("complete", 0), ("fail", 1), ("cancel", 2)])
    def test_an_ended_job_prints_its_tail_and_exits_with_its_status(
        self, url: str, tracker: joblog.Tracker, ending: str, code: int
    ) -> None:
        with tracker.job("failover", "live") as job:
            for n in range(5):
                log.info("line %d", n)
            if ending == "fail":
                job.fail("disk [/dev/sdb] gone \x1b[2J")
            else:
                getattr(job, ending)()
        tracker.flush(10)
        result = follow(job.id, "--url", url, "--limit", "2")
        assert result.exit_code == code, result.output
        assert lines_of(result)[:2] == ["line 3", "line 4"]
        assert f"job {job.id} {job.status.value}" in result.stderr
        assert "\x1b" not in result.output

    def test_a_live_job_every_line_once_in_order(
        self, url: str, tracker: joblog.Tracker, following: threading.Event
    ) -> None:
        started = threading.Event()

        def produce() -> None:
            with tracker.job("failover", "live", steps=["one", "two"]) as job:
                holder.append(job.id)
                tracker.flush(10)
                started.set()
                assert following.wait(60)
                for name in ("one", "two"):
                    with job.step(name):
                        for n in range(10):
                            log.info("%s %d", name, n)
                            time.sleep(0.02)

        holder: list[str] = []
        thread = threading.Thread(target=produce)
        thread.start()
        assert started.wait(30)
        result = follow(holder[0], "--url", url, "--level", "INFO")
        following.set()
        thread.join(30)
        assert result.exit_code == 0, result.output
        expected = [f"{name} {n}" for name in ("one", "two") for n in range(10)]
        assert lines_of(result) == expected
        assert "step 2 two: completed" in result.stderr

    def test_json_and_a_step_that_starts_while_following(
        self, url: str, tracker: joblog.Tracker, following: threading.Event
    ) -> None:
        started = threading.Event()
        holder: list[str] = []

        def produce() -> None:
            with tracker.job("failover", "live", steps=["one", "two"]) as job:
                holder.append(job.id)
                tracker.flush(10)
                started.set()
                assert following.wait(60)
                for name in ("one", "two"):
                    with job.step(name):
                        for n in range(3):
                            log.info("%s %d", name, n)

        thread = threading.Thread(target=produce)
        thread.start()
        assert started.wait(30)
        result = follow(holder[0], "--url", url, "--step", "two", "--json")
        following.set()
        thread.join(30)
        assert result.exit_code == 0, result.output
        events = [json.loads(line) for line in result.stdout.splitlines()]
        assert [e["message"] for e in events] == ["two 0", "two 1", "two 2"]
        assert len({e["step_id"] for e in events}) == 1

    @pytest.mark.parametrize(("phase", "code"), [("completed", 0), ("failed", 1)])
    def test_a_legacy_row_ends_with_its_phase(
        self, url: str, tracker: joblog.Tracker, phase: str, code: int
    ) -> None:
        legacy_id = f"legacy-{phase}"
        with tracker.store.engine.begin() as conn:
            conn.execute(
                schema.failover_jobs.insert().values(
                    job_id=legacy_id, job_type="live", status=phase, created_at=datetime.now(UTC)
                )
            )
        result = follow(legacy_id, "--url", url)
        assert result.exit_code == code, result.output

    def test_an_unknown_id_exits_3_not_a_status(self, url: str, tracker: joblog.Tracker) -> None:
        result = follow("no-such-job", "--url", url)
        assert result.exit_code == EXIT_TROUBLE
        assert "no job is known by the ID 'no-such-job'" in result.output


@pytest.mark.parametrize(
    "options", [["--level", "LOUD"], ["--limit", "-1"], ["--since", "soon"], ["--nope"]]
)
def test_a_bad_option_exits_3_with_follow_and_2_without(options: list[str]) -> None:
    """Never 2, which --follow means as "cancelled"; refused before any database opens."""
    nowhere = "sqlite:///no/such/dir/joblog.db"
    with_follow = CliRunner().invoke(cli, ["logs", "x", "--url", nowhere, "-f", *options])
    assert with_follow.exit_code == EXIT_TROUBLE, with_follow.output
    without = CliRunner().invoke(cli, ["logs", "x", "--url", nowhere, *options])
    assert without.exit_code == 2, without.output


# -- through a live server, across a dropped connection ----------------------------------------


@pytest.fixture(scope="module")
def proxied(url: str) -> Iterator[tuple[str, FaultProxy]]:
    """A live server on the module's database, reached through a proxy tests can cut."""
    settings = ApiSettings(poll_interval=0.05, retry_ms=200)
    with LiveServer(create_app(url, settings=settings)) as live:
        port = int(live.url.rsplit(":", 1)[1])
        proxy = FaultProxy("127.0.0.1", port)
        try:
            yield f"http://127.0.0.1:{proxy.port}", proxy
        finally:
            proxy.close()


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, "logs", "--follow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_note(process: subprocess.Popen[str], text: str) -> list[str]:
    assert process.stderr is not None
    seen: list[str] = []
    while not any(text in line for line in seen):
        line = process.stderr.readline()
        assert line, f"the CLI exited before {text!r}: {seen} {process.communicate()}"
        seen.append(line)
    return seen


class TestADroppedConnection:
    """The CLI's resume logic: what it sends back and prints, whatever the backend (the
    server's side of a resume is tested on every backend in test_api_stream)."""

    @pytest.fixture
    def world(self, tmp_path: Path) -> Iterator[tuple[joblog.Tracker, str, FaultProxy]]:
        url = f"sqlite:///{tmp_path / 'cut.db'}"
        tracker = joblog.Tracker(url, flush_interval=0.01)
        tracker.install_logging()
        settings = ApiSettings(poll_interval=0.05, retry_ms=200)
        try:
            with LiveServer(create_app(url, settings=settings)) as live:
                proxy = FaultProxy("127.0.0.1", int(live.url.rsplit(":", 1)[1]))
                try:
                    yield tracker, f"http://127.0.0.1:{proxy.port}", proxy
                finally:
                    proxy.close()
        finally:
            tracker.close()

    def test_resumes_with_no_line_lost_or_repeated(
        self, world: tuple[joblog.Tracker, str, FaultProxy]
    ) -> None:
        tracker, server, proxy = world
        job = tracker.start_job("failover", "live")
        tracker.flush(10)
        go = threading.Event()

        def produce() -> None:
            go.wait(60)
            with job.activate():
                for n in range(40):
                    log.info("line %d", n)
                    time.sleep(0.05)
            job.complete()

        producer = threading.Thread(target=produce)
        producer.start()
        process = spawn(job.id, "--server", server)
        try:
            wait_for_note(process, "following job")
            go.set()
            assert process.stdout is not None
            head = [process.stdout.readline() for _ in range(5)]
            proxy.cut()
            time.sleep(0.5)
            proxy.restore()
            rest, errors = process.communicate(timeout=120)
        finally:
            go.set()
            producer.join(60)
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, errors
        printed = [line.split(None, 2)[2].rstrip("\n") for line in (*head, *rest.splitlines())]
        assert printed == [f"line {n}" for n in range(40)]
        assert "stream interrupted" in errors and "reconnected" in errors
        assert "Traceback" not in errors


class TestThroughAServer:
    def test_prints_what_the_database_path_prints(
        self, url: str, tracker: joblog.Tracker, proxied: tuple[str, FaultProxy]
    ) -> None:
        with tracker.job("failover", "live", steps=["a", "b"]) as job:
            for name in ("a", "b"):
                with job.step(name):
                    for n in range(4):
                        log.warning("%s [bold]%d[/] \x1b[31m\r", name, n)
        tracker.flush(10)
        server, _proxy = proxied
        for args in (["--json"], ["--step", "b", "--limit", "3"], ["--level", "ERROR"], []):
            direct = CliRunner().invoke(cli, ["logs", job.id, "--url", url, *args])
            remote = CliRunner().invoke(cli, ["logs", job.id, "--server", server, *args])
            followed = follow(job.id, "--server", server, *args)
            assert direct.exit_code == remote.exit_code == followed.exit_code == 0
            assert direct.stdout == remote.stdout == followed.stdout, args

    def test_an_unknown_id_through_a_server(self, proxied: tuple[str, FaultProxy]) -> None:
        result = follow("no-such-job", "--server", proxied[0])
        assert result.exit_code == EXIT_TROUBLE
        assert "no job is known by the ID 'no-such-job'" in result.output

    def test_no_server_there(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        result = follow("x", "--server", f"http://127.0.0.1:{port}")
        assert result.exit_code == EXIT_TROUBLE
        assert "cannot reach the joblog server" in result.output


# -- servers that answer garbage -------------------------------------------------------------


@dataclass
class FakeServer:
    """A TCP server that answers each request on a path with scripted bytes.

    ``stream`` answers ``/stream`` requests in turn (the last one again and again);
    ``/logs`` gets an empty page. ``hold`` keeps a connection open after its answer.
    """

    stream: list[bytes]
    hold: bool = False
    summary: dict[str, Any] | None = None
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        answered = 0
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._open.append(conn)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                head += chunk
            request = head.decode("latin-1")
            self.requests.append(request)
            target = request.split("\r\n", 1)[0]
            if "/logs" in target:
                body = b'{"events": [], "next_cursor": null, "next_before_id": null}'
                answer = http_answer(200, "application/json", body)
            elif "/stream" not in target:
                answer = http_answer(200, "application/json", json.dumps(self.summary).encode())
            else:
                answer = self.stream[min(answered, len(self.stream) - 1)]
                answered += 1
            with contextlib.suppress(OSError):
                conn.sendall(answer)
                if not self.hold:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()


def http_answer(status: int, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nConnection: close\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def sse_answer(*frames: str) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    return head + "".join(frames).encode()


def frame(event: str, data: Any, event_id: str) -> str:
    return f"event: {event}\nid: {event_id}\ndata: {json.dumps(data)}\n\n"


JOB = {"id": "job-1", "status": "running", "percent_complete": 0}


def snapshot(steps: list[dict[str, Any]] | None = None) -> str:
    summary = {"job": JOB, "steps": steps or [], "recent_events": []}
    return frame("snapshot", summary, "0.aa")


def log_line(n: int, step_id: str | None = None) -> str:
    event = {"id": n, "level": "INFO", "message": f"line {n}", "ts": "2026-01-01T00:00:00Z"}
    return frame("log", {**event, "step_id": step_id}, f"{n}.aa")


def step(step_id: str | None, name: str, status: str) -> dict[str, Any]:
    return {"id": step_id, "seq": None if step_id is None else 1, "name": name, "status": status}


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    made: list[FakeServer] = []

    def make(*stream: bytes, hold: bool = False, summary: Any = None) -> FakeServer:
        server = FakeServer(list(stream), hold=hold, summary=summary)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


class TestServersThatAnswerGarbage:
    def test_a_resume_sends_the_last_event_id_and_nothing_repeats(
        self, fake: Callable[..., FakeServer]
    ) -> None:
        server = fake(
            sse_answer("retry: 50\n\n", snapshot(), log_line(1), log_line(2), log_line(3)),
            # A server that repeats line 3 on the resume: printed once all the same.
            sse_answer(log_line(3), log_line(4), frame("end", {"status": "cancelled"}, "4.bb")),
        )
        result = follow("job-1", "--server", server.url)
        assert result.exit_code == 2, result.output
        assert lines_of(result) == ["line 1", "line 2", "line 3", "line 4"]
        streams = [r for r in server.requests if "/stream" in r.split("\r\n", 1)[0]]
        assert "last-event-id" not in streams[0].lower()
        assert "Last-Event-ID: 3.aa" in streams[1]

    def test_a_line_of_a_step_not_seen_yet_is_not_dropped(
        self, fake: Callable[..., FakeServer]
    ) -> None:
        """The stream read the state just before the step's row and its lines were
        committed: the line comes first, and the follower looks the step up."""
        server = fake(
            sse_answer(
                snapshot([step(None, "two", "pending")]),
                log_line(1, step_id="77"),
                log_line(2, step_id="78"),
                frame("end", {"status": "completed"}, "2.bb"),
            ),
            summary={
                "job": JOB,
                "steps": [step("77", "two", "running"), step("78", "other", "running")],
            },
        )
        result = follow("job-1", "--server", server.url, "--step", "two")
        assert result.exit_code == 0, result.output
        assert lines_of(result) == ["line 1"]
        assert "step 1 two: running" in result.stderr

    @pytest.mark.parametrize(
        ("answer", "why"),
        [
            (http_answer(200, "text/html", b"<html>hello</html>"), "did not answer as a joblog"),
            (http_answer(404, "text/html", b"<html>no</html>"), "did not answer as a joblog"),
            (http_answer(500, "text/html", b"\x1b[2Jboom"), "failed (500): \\x1b[2Jboom"),
            (b"GARBAGE\r\n\r\n", "did not answer as a joblog"),
            (b"", "did not answer as a joblog"),
            (sse_answer("event: snapshot\ndata: {not json\n\n"), "whose data is not JSON"),
            (sse_answer("event: snapshot\ndata: [1, 2]\n\n"), "not an object"),
            (sse_answer("event: snapshot\ndata: {}\n\n"), "without a list of steps"),
            (sse_answer(snapshot(), 'event: log\ndata: {"id": "x"}\n\n'), "not one"),
            (sse_answer(snapshot(), 'event: end\ndata: {"status": "exploded"}\n\n'), ""),
            (sse_answer(snapshot([step("x1", "a", "running")])), "ID is not a number: 'x1'"),
        ],
    )
    def test_garbage_is_a_clean_error(
        self, fake: Callable[..., FakeServer], answer: bytes, why: str
    ) -> None:
        server = fake(answer)
        result = follow("job-1", "--server", server.url)
        assert result.exit_code == EXIT_TROUBLE, result.output
        assert why in result.output
        assert "Traceback" not in result.output and "\x1b" not in result.output

    def test_an_endless_line_is_refused(
        self, fake: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sse, "MAX_LINE_BYTES", 1024)
        server = fake(sse_answer("data: " + "x" * 5000), hold=True)
        result = follow("job-1", "--server", server.url)
        assert result.exit_code == EXIT_TROUBLE
        assert "a line longer than 1024 bytes" in result.output

    def test_a_server_that_never_answers(
        self, fake: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cli_server, "READ_TIMEOUT", 0.5)
        server = fake(b"", hold=True)
        result = follow("job-1", "--server", server.url)
        assert result.exit_code == EXIT_TROUBLE
        assert "did not answer as a joblog server" in result.output

    def test_a_refused_token(self, fake: Callable[..., FakeServer]) -> None:
        body = b'{"error": "forbidden", "detail": "not a read token"}'
        server = fake(http_answer(403, "application/json", body))
        result = follow("job-1", "--server", server.url, "--token", "t" * 20)
        assert result.exit_code == EXIT_TROUBLE
        assert "refused the token (not a read token)" in result.output
        assert f"Authorization: Bearer {'t' * 20}" in server.requests[0]


class TestEventsBeforeTheFollow:
    def test_limit_zero_prints_only_new_lines(
        self, url: str, tracker: joblog.Tracker, following: threading.Event
    ) -> None:
        """Lines stored before the follow starts are skipped; lines after it are printed."""
        job = tracker.start_job("failover", "live")
        with job.activate():
            log.info("old")
        tracker.flush(10)

        def produce() -> None:
            assert following.wait(60)
            with job.activate():
                log.info("new")
            job.complete()

        producer = threading.Thread(target=produce)
        producer.start()
        result = follow(job.id, "--url", url, "--limit", "0")
        following.set()
        producer.join(60)
        assert result.exit_code == 0, result.output
        assert lines_of(result) == ["new"]
