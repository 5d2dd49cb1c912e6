"""What a dashboard session costs a guarded read: a cookie against a bearer token.

    python benchmarks/sessions.py                      # SQLite, in a temporary file
    python benchmarks/sessions.py --server postgresql+psycopg://postgres@127.0.0.1:5432/test
    python benchmarks/sessions.py --server mysql+pymysql://root@127.0.0.1:3306/test

``--server`` names a server and a database to connect to; the script creates a scratch
database of its own there and drops it at the end.

Sessions live in the database (so that signing out holds in every server process), so a
request carrying the session cookie reads one row more than the same request carrying a
bearer token, which is checked in memory. The script serves the app in process (httpx's
ASGI transport: no sockets, no other noise), signs in once, then times the status
endpoint ``GET /api/v1/jobs/{id}`` with reads guarded, the two ways taking turns request
by request, and prints each one's median and p99 and the ratio of the medians (the
bearer token is the control). It also times the session lookup alone against the store's
``ping`` (one trivial query). Develop on small ``--requests``; the figures are meant for
a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import anyio
import httpx
import sqlalchemy as sa

from joblog.api.app import create_app
from joblog.api.routes_login import LOGIN_COOKIE
from joblog.api.sessions import SESSION_COOKIE, SessionBook
from joblog.api.settings import ApiSettings
from joblog.storage.store import Store

WRITE = "bench-write-token-0123456789"
READ = "bench-read-token-0123456789"


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(name: str, samples: list[float]) -> str:
    median, p99 = statistics.median(samples) * 1e6, _quantile(samples, 0.99) * 1e6
    return f"{name:<34} median {median:9.1f} µs   p99 {p99:9.1f} µs   n={len(samples)}"


async def _requests(url: str, count: int) -> tuple[list[float], list[float]]:
    settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
    app = create_app(url, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        external = f"bench-{uuid.uuid4().hex[:8]}"
        body = {"job_type": "bench", "operation": "sessions", "external_job_id": external}
        headers = {"Authorization": f"Bearer {WRITE}"}
        created = await client.post("/api/v1/jobs", json=body, headers=headers)
        created.raise_for_status()
        form = await client.get("/login")
        nonce = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert nonce is not None
        signed = await client.post(
            "/login",
            content=f"token={READ}&csrf_token={nonce.group(1)}",
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "cookie": f"{LOGIN_COOKIE}={nonce.group(1)}",
            },
        )
        cookie = f"{SESSION_COOKIE}={signed.cookies[SESSION_COOKIE]}"
        client.cookies.clear()
        path = f"/api/v1/jobs/{external}"
        ways = {
            "bearer": {"Authorization": f"Bearer {READ}"},
            "cookie": {"cookie": cookie},
        }
        timings: dict[str, list[float]] = {"bearer": [], "cookie": []}
        for round_ in range(count + count // 10):
            for name, way in ways.items():
                start = time.perf_counter()
                response = await client.get(path, headers=way)
                elapsed = time.perf_counter() - start
                assert response.status_code == 200, response.text
                if round_ >= count // 10:  # the first tenth warms up
                    timings[name].append(elapsed)
    app.state.store.close()
    return timings["bearer"], timings["cookie"]


def _lookups(url: str, count: int) -> tuple[list[float], list[float]]:
    store = Store(url)
    try:
        settings = ApiSettings(write_tokens=(WRITE,), read_tokens=(READ,))
        app = create_app(store=store, settings=settings)
        sessions: SessionBook = app.state.sessions
        secret = sessions.open(READ)
        calls: dict[str, Callable[[], object]] = {
            "ping": store.reads.ping,
            "find": lambda: sessions.find(secret),
        }
        timings: dict[str, list[float]] = {"ping": [], "find": []}
        for round_ in range(count + count // 10):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                if round_ >= count // 10:
                    timings[name].append(elapsed)
        sessions.end(secret)
        return timings["ping"], timings["find"]
    finally:
        store.close()


@contextlib.contextmanager
def scratch_database(server: str | None) -> Iterator[str]:
    """A new, empty database: a temporary SQLite file, or one made on ``server``."""
    if server is None:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/joblog.db"
        return
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"joblog_bench_sessions_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", help="a PostgreSQL or MariaDB URL (default: SQLite)")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests each way")
    args = parser.parse_args()
    with scratch_database(args.server) as url:
        bearer, cookie = anyio.run(_requests, url, args.requests)
        ping, find = _lookups(url, args.requests)
    print(_line("GET status, bearer token (control)", bearer))
    print(_line("GET status, session cookie", cookie))
    ratio = statistics.median(cookie) / statistics.median(bearer)
    print(f"{'cookie / bearer (medians)':<34} {ratio:.2f}x")
    print(_line("store.reads.ping (control)", ping))
    print(_line("SessionBook.find", find))
    print(f"{'find / ping (medians)':<34} {statistics.median(find) / statistics.median(ping):.2f}x")


if __name__ == "__main__":
    main()
