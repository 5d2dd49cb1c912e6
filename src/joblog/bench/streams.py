"""``joblog bench scale`` (stream part): what open live streams cost the database, and
how fast a logged line reaches 1,000 of them.

* **Idle streams**: one ``joblog serve`` whose database connections go through a
  counting TCP proxy (written here: it counts the client's messages to the database,
  one per round trip); ``streams`` open SSE streams on as many running jobs that nobody
  writes to; the proxy's count over ``idle_s`` seconds, per 100 streams. Before the
  change hub each stream polled on its own: ~2,200 round trips/s per 100 (issue 13).
* **Delivery**: 1,000 streams over 2 servers (500 each, 5 per job on 200 running jobs);
  another process stores one event per job every ``interval_s`` (one batch, one
  transaction), its message the wall-clock time of the commit's start; each client
  notes when the ``log`` frame arrives. Latency = arrival - that time (one machine,
  one clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joblog._ids import utcnow
from joblog._ops import InsertJob
from joblog.bench.backends import BenchDatabase
from joblog.bench.progress import Reporter
from joblog.bench.serving import start_joblog, stop
from joblog.bench.timing import percentile
from joblog.rules import new_job_row
from joblog.storage.store import Store

__all__ = ["CountingProxy", "StreamConfig", "run_delivery", "run_idle_streams"]

#: Seconds between the last snapshot and the count (past the hub's first watcher tick).
_SETTLE_S = 6.5
#: Database round trips per second per 100 idle streams before the change hub (issue 13).
BEFORE_PER_100 = 2200


@dataclass
class StreamConfig:
    idle_streams: int = 100
    idle_s: float = 10.0
    delivery_streams: int = 1000
    delivery_servers: int = 2
    delivery_jobs: int = 200
    delivery_s: float = 10.0
    interval_s: float = 0.5


class CountingProxy:
    """A TCP proxy in a thread of its own that counts the client's messages."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.messages = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        done.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(upstream_writer)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, count: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if count:
                        self.messages += 1
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(
            pipe(reader, upstream_writer, True), pipe(upstream_reader, writer, False)
        )


def _running_jobs(url: str, count: int) -> list[str]:
    store = Store(url)
    try:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        now = utcnow()
        store.apply_batch([InsertJob(new_job_row(i, "bench", "stream", now=now)) for i in ids])
        return ids
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _open_stream(port: int, job_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    request = (
        f"GET /api/v1/jobs/{job_id}/stream HTTP/1.1\r\nHost: bench\r\n"
        "Accept: text/event-stream\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    return reader, writer


async def _until_snapshot(reader: asyncio.StreamReader) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise RuntimeError("stream closed before its snapshot")
        if line.startswith(b"event: snapshot"):
            return


def run_idle_streams(
    dbs: list[BenchDatabase], config: StreamConfig, reporter: Reporter
) -> list[dict[str, Any]]:
    results = []
    for db in dbs:
        if db.backend == "sqlite":
            continue  # no network to count
        db.recreate()
        jobs = _running_jobs(db.sa_url, config.idle_streams)
        url = db.url
        host, port = (
            url.host or "127.0.0.1",
            int(url.port or (5432 if db.backend == "postgresql" else 3306)),
        )
        task = reporter.task(f"{db.backend}: idle streams", 1)
        try:
            with CountingProxy(host, port) as proxy:
                proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
                    hide_password=False
                )
                server_port = _free_port()
                server = start_joblog(proxied, server_port, 1)
                try:
                    rate = asyncio.run(_idle(server_port, jobs, proxy, config.idle_s))
                finally:
                    stop(server)
            per_100 = rate * 100 / len(jobs)
            results.append(
                {
                    "backend": db.backend,
                    "streams": len(jobs),
                    "seconds": config.idle_s,
                    "round_trips_per_s": rate,
                    "per_100_streams": per_100,
                    "before_per_100": BEFORE_PER_100,
                    "fewer": BEFORE_PER_100 / per_100 if per_100 else float("inf"),
                }
            )
            reporter.advance(task)
        finally:
            db.drop()
    return results


async def _idle(port: int, jobs: list[str], proxy: CountingProxy, seconds: float) -> float:
    streams = [await _open_stream(port, job) for job in jobs]
    try:
        await asyncio.wait_for(asyncio.gather(*(_until_snapshot(r) for r, _ in streams)), 120)
        drains = [asyncio.ensure_future(_drain(r)) for r, _ in streams]  # keepalives
        # The hub's first watcher tick (5 s on PostgreSQL) sees every new key as moved
        # and wakes its streams once; the steady state starts after it.
        await asyncio.sleep(_SETTLE_S)
        start, before = time.monotonic(), proxy.messages
        await asyncio.sleep(seconds)
        counted = proxy.messages - before
        elapsed = time.monotonic() - start
        for drain in drains:
            drain.cancel()
        return counted / elapsed
    finally:
        for _, writer in streams:
            writer.close()


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


_WRITER = """
import sys, time, json
from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.storage.store import Store
url, jobs = sys.argv[1], json.loads(sys.argv[2])
seconds, interval = float(sys.argv[3]), float(sys.argv[4])
store = Store(url)
end = time.time() + seconds
while time.time() < end:
    stamp = f"{time.time():.6f}"
    now = utcnow()
    rows = [(j, None, None, "INFO", stamp, None, now, None, None) for j in jobs]
    store.apply_batch([InsertEvents(rows)])
    time.sleep(max(0.0, interval - (time.time() - float(stamp))))
store.close()
"""


def run_delivery(db: BenchDatabase, config: StreamConfig, reporter: Reporter) -> dict[str, Any]:
    """1,000 streams over 2 servers on ``db``: delivery latency of logged lines."""
    db.recreate()
    jobs = _running_jobs(db.sa_url, config.delivery_jobs)
    servers = []
    task = reporter.task(f"{db.backend}: delivery to {config.delivery_streams} streams", 1)
    try:
        ports = [_free_port() for _ in range(config.delivery_servers)]
        servers = [start_joblog(db.sa_url, port, 1) for port in ports]
        latencies, expected = asyncio.run(_deliver(db.sa_url, ports, jobs, config))
        values = sorted(latencies)
        reporter.advance(task)
        return {
            "backend": db.backend,
            "streams": config.delivery_streams,
            "servers": config.delivery_servers,
            "jobs": len(jobs),
            "deliveries": len(values),
            "expected": expected,
            "p50_ms": percentile(values, 0.50) * 1000 if values else None,
            "p99_ms": percentile(values, 0.99) * 1000 if values else None,
            "max_ms": values[-1] * 1000 if values else None,
        }
    finally:
        for server in servers:
            stop(server)
        db.drop()


async def _deliver(
    url: str, ports: list[int], jobs: list[str], config: StreamConfig
) -> tuple[list[float], int]:
    streams = []
    for n in range(config.delivery_streams):
        streams.append(await _open_stream(ports[n % len(ports)], jobs[n % len(jobs)]))
    latencies: list[float] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(_until_snapshot(r) for r, _ in streams)), 300)
        readers = [asyncio.ensure_future(_collect(r, latencies)) for r, _ in streams]
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            url,
            json.dumps(jobs),
            str(config.delivery_s),
            str(config.interval_s),
            env={k: v for k, v in os.environ.items() if not k.startswith("JOBLOG_")},
        )
        await writer.wait()
        await asyncio.sleep(3.0)  # the last lines arrive
        for reader in readers:
            reader.cancel()
        rounds = int(config.delivery_s / config.interval_s)
        return latencies, rounds * config.delivery_streams
    finally:
        for _, stream_writer in streams:
            stream_writer.close()


async def _collect(reader: asyncio.StreamReader, latencies: list[float]) -> None:
    log_frame = False
    while line := await reader.readline():
        if line.startswith(b"event: "):
            log_frame = line.startswith(b"event: log")
        elif log_frame and line.startswith(b"data: "):
            arrived = time.time()
            message = json.loads(line[6:])["message"]
            with contextlib.suppress(ValueError):
                latencies.append(arrived - float(message))
            log_frame = False
