"""``joblog bench scale`` (status part): the status endpoint beside a bare control app.

``joblog serve --read-only --workers W`` on a database of ``events`` log events, and in
the same run a *control*: a bare FastAPI app on the same uvicorn (same workers, same
event loop and HTTP parser) whose one route returns a fixed body of a summary's size.
Its CPU per request is the framework's floor; joblog's ratio to it is the figure.

Load: ``wrk`` (64 connections by default, the same load generator as ``joblog bench
api``) polling ``GET /api/v1/jobs/<external id>``:

* ``followed``: 64 jobs, as 64 GUIs each watching one, without ``If-None-Match``;
* ``followed+INM``: the same with each job's current ETag (answered 304);
* ``random``: random keys out of 5,000 jobs (most requests build a summary: the cold path).

CPU per request is the server processes' user+system time (``/proc``) over the requests
answered, so the load generator's own CPU is not in it.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joblog.bench.api import find_wrk, prepare
from joblog.bench.backends import BenchDatabase
from joblog.bench.progress import Reporter
from joblog.bench.workload import external_id

__all__ = ["StatusConfig", "control_app", "run_status"]

PATH = "/api/v1/jobs/{}"
#: Where the servers' own log lines go (``JOBLOG_BENCH_SERVER_LOG``, default: nowhere).
_SERVER_LOG = (
    open(os.environ["JOBLOG_BENCH_SERVER_LOG"], "ab")  # noqa: SIM115 - lives as long as the run
    if os.environ.get("JOBLOG_BENCH_SERVER_LOG")
    else subprocess.DEVNULL
)
_CONTROL_BYTES_ENV = "JOBLOG_BENCH_CONTROL_BYTES"


@dataclass
class StatusConfig:
    events: int = 1_000_000
    pollers: int = 64
    duration_s: float = 8.0
    workers: tuple[int, ...] = (1, 2)
    followed_jobs: int = 64
    random_keys: int = 5000
    variants: tuple[str, ...] = ("followed", "followed+INM", "random")
    install_wrk: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def control_app() -> Any:
    """The control: FastAPI, one route, a fixed JSON body (uvicorn factory)."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    size = int(os.environ.get(_CONTROL_BYTES_ENV, "4800"))
    body = b'{"pad":"' + b"x" * max(size - 10, 0) + b'"}'
    app = FastAPI()

    @app.get("/api/v1/jobs/{any_id:path}")
    async def status(any_id: str) -> Response:
        return Response(body, media_type="application/json")

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 180) -> None:
    """Until the server answers (its socket accepts before its app is ready)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"no server on port {port} after {seconds:g} s")


def start_joblog(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    entry = "from joblog.cli import main; main()"
    command = [sys.executable, "-c", entry, "serve", "--read-only", "--url", url]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLOG_")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env, stderr=_SERVER_LOG)
    _wait_for(port, process)
    return process


def start_control(port: int, workers: int, body_bytes: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys, uvicorn\n"
        "uvicorn.run('joblog.bench.serving:control_app', factory=True, host='127.0.0.1',"
        " port=int(sys.argv[1]), workers=int(sys.argv[2]), log_level='warning',"
        " access_log=False)\n"
    )
    env = {**os.environ, _CONTROL_BYTES_ENV: str(body_bytes)}
    process = subprocess.Popen([sys.executable, "-c", code, str(port), str(workers)], env=env)
    _wait_for(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants."""
    ticks = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


_WRK_SCRIPT = """
local paths, tags = {}, {}
for line in io.lines("%s") do
  local path, tag = line:match("^([^\\t]*)\\t?(.*)$")
  paths[#paths + 1] = path
  tags[#tags + 1] = tag
end
local n = 0
request = function()
  n = n + 1
  local i = math.random(#paths)
  if tags[i] ~= "" then
    return wrk.format("GET", paths[i], {["If-None-Match"] = tags[i]})
  end
  return wrk.format("GET", paths[i])
end
"""


def run_load(
    wrk: str, port: int, lines: list[str], pollers: int, seconds: float, server_pid: int
) -> dict[str, Any]:
    """wrk against ``port`` with ``lines`` (``path`` or ``path<TAB>etag``); with the
    server's CPU per request."""
    from joblog.bench.api import _parse_wrk

    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(lines) + "\n")
        script = Path(tmp) / "poll.lua"
        script.write_text(_WRK_SCRIPT % listing)
        command = [wrk, "-t2", f"-c{pollers}", f"-d{max(1, round(seconds))}s", "--latency"]
        command += ["-s", str(script), f"http://127.0.0.1:{port}"]
        before = cpu_seconds(server_pid)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(server_pid) - before
    measured = _parse_wrk(output)
    measured["cpu_us_per_request"] = 1e6 * used / max(measured["requests"], 1)
    return measured


def _etags(port: int, paths: list[str]) -> list[str]:
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        return [client.get(path).headers.get("etag", "") for path in paths]


def _body_size(port: int, path: str) -> int:
    import httpx

    return len(httpx.get(f"http://127.0.0.1:{port}{path}", timeout=120).content)


def run_status(
    dbs: list[BenchDatabase], config: StatusConfig, reporter: Reporter
) -> list[dict[str, Any]]:
    wrk = find_wrk(config.install_wrk)
    if wrk is None:
        raise RuntimeError("the status benchmark needs wrk (apt-get install wrk)")
    results: list[dict[str, Any]] = []
    for db in dbs:
        jobs = prepare(db, config.events, reporter)
        rng = random.Random(5)
        followed = [PATH.format(external_id(rng.randrange(jobs))) for _ in range(64)]
        followed = followed[: config.followed_jobs]
        randoms = [PATH.format(external_id(rng.randrange(jobs))) for _ in range(config.random_keys)]
        task = reporter.task(f"{db.backend}: status endpoint", len(config.workers))
        try:
            for workers in config.workers:
                port = _free_port()
                server = start_joblog(db.sa_url, port, workers)
                try:
                    size = _body_size(port, followed[0])
                    tags = _etags(port, followed)
                    loads = {
                        "followed": followed,
                        "followed+INM": [f"{p}\t{t}" for p, t in zip(followed, tags, strict=True)],
                        "random": randoms,
                    }
                    for variant in config.variants:
                        run_load(wrk, port, loads[variant][:50], 4, 1, server.pid)  # warm-up
                        measured = run_load(
                            wrk, port, loads[variant], config.pollers, config.duration_s, server.pid
                        )
                        results.append(
                            {"backend": db.backend, "app": "joblog", "workers": workers}
                            | {"variant": variant, "body_bytes": size, **measured}
                        )
                finally:
                    stop(server)
                port = _free_port()
                control = start_control(port, workers, size)
                try:
                    run_load(wrk, port, followed, 4, 1, control.pid)
                    measured = run_load(
                        wrk, port, followed, config.pollers, config.duration_s, control.pid
                    )
                    results.append(
                        {"backend": db.backend, "app": "control", "workers": workers}
                        | {"variant": "fixed body", "body_bytes": size, **measured}
                    )
                finally:
                    stop(control)
                reporter.advance(task)
        finally:
            db.drop()
    return results
