"""What joblog does about transaction pooling: prepared statements, LISTEN, session locks."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from joblog.api.app import create_app
from joblog.api.settings import ApiSettings
from joblog.storage.store import Store
from tests.support.api import LiveServer, temporary_database
from tests.support.services import PgBouncer

WRITE = "write-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {WRITE}"}
THREADS = 8
ROUNDS = 40


@pytest.fixture
def urls(pgbouncer: PgBouncer, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(through PgBouncer as an operator would write it, direct) for an empty database."""
    with temporary_database("postgresql", tmp_path) as direct:
        yield pgbouncer.url(str(sa.make_url(direct).database)), direct


class TestDirectUrl:
    def test_the_pooled_url_gets_prepared_statements_off(self, urls: tuple[str, str]) -> None:
        pooled, direct = urls
        store = Store(pooled, direct_url=direct)
        try:
            assert store.url.query["prepare_threshold"] == "none"
            assert store.direct_url == sa.make_url(direct)
        finally:
            store.close()

    def test_a_threshold_in_the_url_is_kept(self, urls: tuple[str, str]) -> None:
        pooled, direct = urls
        store = Store(f"{pooled}?prepare_threshold=7", direct_url=direct)
        try:
            assert store.url.query["prepare_threshold"] == "7"
        finally:
            store.close()

    def test_migrations_run_and_release_their_lock_over_the_direct_url(
        self, urls: tuple[str, str]
    ) -> None:
        pooled, direct = urls
        Store(pooled, direct_url=direct).close()  # an empty database: migrated
        engine = sa.create_engine(direct)
        try:
            with engine.connect() as conn:
                held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                assert conn.execute(sa.text(held)).scalar() == 0
                assert conn.execute(sa.text("SELECT count(*) FROM job_tracking")).scalar() == 0
        finally:
            engine.dispose()


class TestServingThroughPgBouncer:
    def test_concurrent_reads_and_writes_have_zero_errors(self, urls: tuple[str, str]) -> None:
        """The issue's failure: psycopg's prepared statements through transaction pooling
        ("_pg3_0 already exists / does not exist") failed one request in eight."""
        pooled, direct = urls
        settings = ApiSettings(write_tokens=(WRITE,), direct_url=direct)
        outcomes: Counter[int] = Counter()
        with LiveServer(create_app(pooled, settings=settings)) as live:
            barrier = threading.Barrier(THREADS)

            def client(n: int) -> None:
                with httpx.Client(base_url=live.url, timeout=60) as http:
                    external = f"gui-{n}"
                    body = {
                        "job_type": "failover",
                        "operation": "live",
                        "external_job_id": external,
                    }
                    barrier.wait(60)
                    outcomes[http.post("/api/v1/jobs", json=body, headers=AUTH).status_code] += 1
                    for k in range(ROUNDS):
                        events = {
                            "batch_key": f"{external}-{k}",
                            "events": [
                                {"external_job_id": external, "level": "INFO", "message": "m"}
                            ],
                        }
                        for response in (
                            http.post("/api/v1/events", json=events, headers=AUTH),
                            http.get(f"/api/v1/jobs/{external}"),
                            http.get(f"/api/v1/failover/{external}/status"),
                            http.get(f"/api/v1/jobs/{external}/logs"),
                            http.get("/api/v1/jobs?status=running"),
                        ):
                            outcomes[response.status_code] += 1

            threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert outcomes == {201: THREADS, 200: THREADS * ROUNDS * 5}

    def test_the_change_hub_listens_over_the_direct_url(self, urls: tuple[str, str]) -> None:
        pooled, direct = urls
        app = create_app(pooled, settings=ApiSettings(write_tokens=(WRITE,), direct_url=direct))
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=60) as http:
            body = {"job_type": "failover", "operation": "live", "external_job_id": "gui-1"}
            job = http.post("/api/v1/jobs", json=body, headers=AUTH).json()
            hub = app.state.hub
            deadline = time.monotonic() + 30
            while hub.stats.notifications == 0:
                assert time.monotonic() < deadline, "no NOTIFY reached the hub"
                events = {
                    "batch_key": f"k-{time.monotonic_ns()}",
                    "events": [{"job_id": job["id"], "level": "INFO", "message": "m"}],
                }
                http.post("/api/v1/events", json=events, headers=AUTH)
                time.sleep(0.2)
