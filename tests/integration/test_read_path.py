"""The one read path and the one error boundary, against the real databases.

* reads go through a bounded pool: threads that come and go (as anyio's worker threads
  do) leave no connection behind;
* a unique violation surfaces as :class:`joblog.exceptions.Conflict`, which callers can
  catch: the ingest path's step numbering retries on it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from joblog import JobStatus, StepStatus
from joblog.exceptions import ConfigError, Conflict
from joblog.resolve import Resolver
from joblog.storage import producer as producer_module
from joblog.storage import schema
from joblog.storage.engine import storage_errors
from joblog.storage.producer import ProducerWrites
from joblog.storage.store import Store
from tests.conftest import PG_ADMIN_URL


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


class TestConflict:
    def test_a_duplicate_key_is_a_conflict(self, store: Store) -> None:
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        job = producer.start_job("failover", "live")
        producer.start_step(job.id, "validate")
        with (
            pytest.raises(Conflict),
            storage_errors("inserting a step twice"),
            store.write_engine.begin() as conn,
        ):
            conn.execute(
                schema.job_steps.insert().values(
                    id=10**12, job_id=job.id, seq=1, name="again", status="running"
                )
            )

    def test_start_step_retries_when_its_seq_was_taken(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The first attempt reads a stale MAX(seq) (as when another server's start
        committed in between): the unique index refuses it, and the retry succeeds."""
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        job = producer.start_job("failover", "live")
        producer.start_step(job.id, "validate")
        real = producer_module._next_seq
        calls: list[int] = []

        def stale_once(conn: sa.Connection, job_id: str) -> int:
            calls.append(1)
            return 1 if len(calls) == 1 else real(conn, job_id)

        monkeypatch.setattr(producer_module, "_next_seq", stale_once)
        step = producer.start_step(job.id, "snapshot")
        assert (step.seq, step.name) == (2, "snapshot")
        assert len(calls) == 2
        steps = store.reads.steps_of(job.id)
        assert [(s.seq, s.name) for s in steps] == [(1, "validate"), (2, "snapshot")]

    def test_concurrent_step_starts_get_distinct_numbers(self, store: Store) -> None:
        producer = ProducerWrites(store, attach=Resolver(store).attach)
        job = producer.start_job("failover", "live")
        seqs: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def start(n: int) -> None:
            barrier.wait()
            try:
                seqs.append(producer.start_step(job.id, f"volume-{n}").seq)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=start, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sorted(seqs) == list(range(1, 9))
        for seq in seqs:
            producer.finish_step(job.id, seq, StepStatus.COMPLETED)
        assert producer.update_job(job.id, status=JobStatus.COMPLETED).percent_complete == 100


def test_reader_threads_that_come_and_go_leave_no_connections(make_database: object) -> None:
    url = make_database("postgresql")  # type: ignore[operator]
    name = f"joblog-{uuid.uuid4().hex[:10]}"
    store = Store(url, connect_args={"application_name": name})
    admin = sa.create_engine(PG_ADMIN_URL)
    resolver = Resolver(store)
    producer = ProducerWrites(store, attach=resolver.attach)
    job = producer.start_job("failover", "live", external_job_id="burst-1")

    def connections() -> int:
        with admin.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": name},
                ).scalar_one()
            )

    def burst() -> None:
        def work() -> None:
            for _ in range(10):
                resolver.resolve("burst-1")
                store.reads.get_job(job.id)

        threads = [threading.Thread(target=work) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    try:
        counts = []
        for _ in range(4):
            burst()  # every burst's threads end: nothing may stay tied to them
            counts.append(connections())
        # A bounded pool keeps at most pool_size idle read connections (8) plus the
        # write engine's; the count does not grow from burst to burst.
        assert max(counts) <= 16, counts
        assert counts[-1] <= counts[0], counts
    finally:
        store.close()
        admin.dispose()


class TestPrepareThreshold:
    def test_none_turns_prepared_statements_off(self, make_database: object) -> None:
        url = make_database("postgresql")  # type: ignore[operator]
        store = Store(f"{url}?prepare_threshold=none")
        try:
            with store.reads.engine.connect() as conn:
                assert conn.connection.dbapi_connection.prepare_threshold is None  # type: ignore[union-attr]
            resolver = Resolver(store)
            job = ProducerWrites(store, attach=resolver.attach).start_job("failover", "live")
            for _ in range(10):  # more than psycopg's default threshold of 5
                assert resolver.resolve(job.id).job.id == job.id
        finally:
            store.close()

    @pytest.mark.parametrize("value", ["lots", "1.5", "-x"])
    def test_a_bad_value_is_a_config_error(self, value: str) -> None:
        with pytest.raises(ConfigError, match="prepare_threshold"):
            Store(f"postgresql+psycopg://postgres@127.0.0.1:1/x?prepare_threshold={value}")
