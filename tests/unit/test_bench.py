"""The benchmark's correctness pieces, on small data in SQLite (no timings asserted)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from joblog.bench.backends import BenchDatabase, Connection
from joblog.bench.lookup import LookupConfig, load_until, run_lookup_backend
from joblog.bench.progress import Reporter
from joblog.bench.report import render
from joblog.bench.strategies import STRATEGIES, create_strategy_objects, params_for
from joblog.bench.workload import (
    external_id,
    generate,
    job_uuid,
    missing_external_ids,
    started_message,
)
from joblog.resolve import Resolver
from joblog.storage.store import Store

JOBS = 40  # 2,000 events


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[BenchDatabase, Connection]]:
    db = BenchDatabase.from_url(f"sqlite:///{tmp_path / 'bench.db'}")
    db.recreate()
    store = Store(db.sa_url, auto_migrate=False)
    store.create_tables()
    store.close()
    conn = db.connect()
    create_strategy_objects(db, conn)
    load_until(db, conn, 0, JOBS, Reporter(enabled=False))
    yield db, conn
    conn.close()


class TestWorkload:
    def test_fourteen_percent_of_events_belong_to_a_job(self) -> None:
        events = [e for chunk in generate(0, JOBS) for e in chunk.events]
        attributed = [e for e in events if e[0] is not None]
        assert len(events) == 2000
        assert len(attributed) / len(events) == pytest.approx(0.14)

    def test_a_job_has_seven_events_and_starts_with_the_seed_message(self) -> None:
        chunk = next(generate(3, 1))
        mine = [e for e in chunk.events if e[0] == job_uuid(3)]
        assert len(mine) == 7
        assert mine[0][4] == started_message(external_id(3))

    def test_external_ids_look_like_the_guis(self) -> None:
        assert re.fullmatch(r"unified-(live|test)-failover-[a-z0-9]+-\d{10}", external_id(12))

    def test_the_message_prefix_leaves_six_characters_of_the_id(self) -> None:
        assert len("Failover job started: unified-live-failover-") == 44

    def test_missing_keys_are_not_existing_ones(self) -> None:
        existing = {external_id(i) for i in range(10_000)}
        assert not existing & set(missing_external_ids(200))


class TestStrategies:
    @pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.key)
    def test_each_strategy_finds_the_right_job(
        self, loaded: tuple[BenchDatabase, Connection], strategy: object
    ) -> None:
        db, conn = loaded
        for index in (0, 17, JOBS - 1):
            sql = strategy.sql["sqlite"]  # type: ignore[attr-defined]
            rows = db.execute(conn, sql, params_for(strategy, "sqlite", external_id(index)))  # type: ignore[arg-type]
            assert rows[0][0] == job_uuid(index)

    @pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.key)
    def test_each_strategy_finds_nothing_for_a_missing_key(
        self, loaded: tuple[BenchDatabase, Connection], strategy: object
    ) -> None:
        db, conn = loaded
        key = missing_external_ids(1)[0]
        sql = strategy.sql["sqlite"]  # type: ignore[attr-defined]
        assert db.execute(conn, sql, params_for(strategy, "sqlite", key)) == []  # type: ignore[arg-type]

    def test_joblog_resolves_the_loaded_external_ids(
        self, loaded: tuple[BenchDatabase, Connection]
    ) -> None:
        db, _conn = loaded
        store = Store(db.sa_url, auto_migrate=False)
        try:
            resolver = Resolver(store)
            assert resolver.job_id(external_id(5)) == job_uuid(5)
            summary = resolver.resolve(external_id(5))
            assert len(summary.steps) == 5
            assert len(summary.recent_events) == 7
        finally:
            store.close()


class TestRun:
    def test_a_tiny_run_renders_every_section(self, tmp_path: Path) -> None:
        db = BenchDatabase.from_url(f"sqlite:///{tmp_path / 'run.db'}")
        config = LookupConfig(sizes=[1000], keys=100, scan_budget_s=0.2)
        results = run_lookup_backend(db, config, Reporter(enabled=False))
        lookup = {
            "date": "now",
            "config": {
                "keys": 100,
                "missing_fraction": 0.1,
                "scan_budget_s": 0.2,
                "insert_cost_events": 0,
            },
            "results": results,
        }
        text = render({"lookup": lookup}, None)
        assert results[0]["attributed"] / results[0]["events"] == pytest.approx(0.14)
        assert all(s["hits"] > 0 for s in results[0]["strategies"].values())
        assert "joblog next to the bare driver" in text
