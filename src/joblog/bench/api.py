"""``joblog bench api``: the seed's status endpoint polled by external ID.

One server process (uvicorn, the app from ``create_app(url)``) on a database holding 1M
log events; 1, 16 and 64 concurrent pollers ask for random existing external IDs. The
load generator is ``wrk`` (installed with apt-get when missing and allowed) because a
Python client on the same two cores would measure itself; httpx is the fallback.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joblog.bench.backends import BenchDatabase
from joblog.bench.lookup import load_until
from joblog.bench.progress import Reporter
from joblog.bench.timing import Latency
from joblog.bench.workload import external_id, jobs_for_events
from joblog.storage.store import Store

__all__ = ["ApiConfig", "run_api"]

PATH = "/api/v1/failover/{}/status"
_SERVER = (
    "import sys, uvicorn\n"
    "from joblog.api.app import create_app\n"
    "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]),"
    " log_level='warning', access_log=False)\n"
)


@dataclass
class ApiConfig:
    events: int = 1_000_000
    pollers: tuple[int, ...] = (1, 16, 64)
    duration_s: float = 8.0
    install_wrk: bool = True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_wrk(install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, **quiet)  # type: ignore[call-overload]
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env, **quiet)  # type: ignore[call-overload]
    return shutil.which("wrk")


def _start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-c", _SERVER, url, str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the API server did not start within 30 s")


_WRK_SCRIPT = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
math.randomseed(42)
request = function()
  return wrk.format("GET", string.format("%s", ids[math.random(#ids)]))
end
"""


def _parse_wrk(text: str) -> dict[str, Any]:
    def micros(value: str, unit: str) -> float:
        return float(value) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]

    pattern = r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$"
    pct = {p: micros(v, u) for p, v, u in re.findall(pattern, text, re.M)}
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return {
        "rps": rps,
        "p50_us": pct.get("50"),
        "p99_us": pct.get("99"),
        "requests": requests,
        "errors": failed,
    }


def run_wrk(wrk: str, port: int, keys: list[str], pollers: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ids = Path(tmp) / "paths.txt"
        ids.write_text("\n".join(PATH.format(key) for key in keys) + "\n")
        script = Path(tmp) / "poll.lua"
        script.write_text(_WRK_SCRIPT % (ids, "%s"))
        threads = 1 if pollers < 16 else 2
        command = [
            wrk,
            f"-t{threads}",
            f"-c{pollers}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return _parse_wrk(output)


def run_httpx(port: int, keys: list[str], pollers: int, seconds: float) -> dict[str, Any]:
    import httpx

    async def main() -> tuple[list[int], int]:
        samples: list[int] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def poller(seed: int) -> None:
                nonlocal errors
                rng = random.Random(seed)
                while time.perf_counter() < deadline:
                    start = time.perf_counter_ns()
                    response = await client.get(PATH.format(rng.choice(keys)))
                    samples.append(time.perf_counter_ns() - start)
                    errors += response.status_code != 200

            await asyncio.gather(*(poller(n) for n in range(pollers)))
        return samples, errors

    started = time.perf_counter()
    samples, errors = asyncio.run(main())
    latency = Latency.of(samples, len(samples) - errors)
    return {
        "rps": len(samples) / (time.perf_counter() - started),
        "p50_us": latency.p50_us,
        "p99_us": latency.p99_us,
        "requests": len(samples),
        "errors": errors,
    }


def prepare(db: BenchDatabase, events: int, reporter: Reporter) -> int:
    """A fresh database with ``events`` log events (joblog's schema only); its job count."""
    db.recreate()
    store = Store(db.sa_url)  # through migrations, as a served database would be
    store.close()
    conn = db.connect()
    try:
        jobs = jobs_for_events(events)
        load_until(db, conn, 0, jobs, reporter, correlations=False)
        db.analyze(conn, ("log_events", "job_tracking", "job_steps"))
    finally:
        conn.close()
    return jobs


def run_api(dbs: list[BenchDatabase], config: ApiConfig, reporter: Reporter) -> dict[str, Any]:
    wrk = find_wrk(config.install_wrk)
    results = []
    for db in dbs:
        jobs = prepare(db, config.events, reporter)
        rng = random.Random(1)
        keys = [external_id(rng.randrange(jobs)) for _ in range(5000)]
        port = _free_port()
        server = _start_server(db.sa_url, port)
        task = reporter.task(f"{db.backend}: status API", len(config.pollers))
        try:
            for pollers in config.pollers:
                run_httpx(port, keys[:50], 1, 0.5)  # warm-up
                if wrk:
                    measured = run_wrk(wrk, port, keys, pollers, config.duration_s)
                else:
                    measured = run_httpx(port, keys, pollers, config.duration_s)
                results.append({"backend": db.backend, "pollers": pollers, **measured})
                reporter.advance(task)
        finally:
            server.terminate()
            server.wait(10)
            db.drop()
    tool = "wrk" if wrk else "httpx (async)"
    return {
        "results": results,
        "description": f"{config.events:,} log events; GET /api/v1/failover/<external id>/status "
        f"for random existing external IDs; load generator: {tool}, {config.duration_s:g} s "
        "per level; one uvicorn server process.",
    }
