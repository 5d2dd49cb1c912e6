"""The server reaps abandoned jobs and prunes old events on its own schedule."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from joblog import JobStatus
from joblog._ids import utcnow
from joblog._ops import InsertEvents
from joblog.api.app import create_app
from joblog.resolve import Resolver
from joblog.storage import schema
from joblog.storage.producer import ProducerWrites
from joblog.storage.store import Store
from tests.support.api import LiveServer
from tests.support.db import events


def test_reaping_and_pruning_run_while_serving(database_url: str) -> None:
    store = Store(database_url)
    try:
        job = ProducerWrites(store, attach=Resolver(store).attach).start_job("failover", "live")
        past = utcnow() - timedelta(hours=1)
        with store.engine.begin() as conn:
            conn.execute(schema.job_tracking.update().values(heartbeat_at=past, updated_at=past))
        old = utcnow() - timedelta(days=90)
        store.apply_batch(
            [InsertEvents([(None, None, None, "INFO", "old", None, old, None, None)])]
        )
        app = create_app(
            store=store, reap_interval=0.1, retention=timedelta(days=30), prune_interval=0.1
        )
        with LiveServer(app):
            deadline = time.monotonic() + 10
            while events(store) or store.reads.get_job(job.id).status is JobStatus.RUNNING:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "housekeeping did not run"
                time.sleep(0.05)
        assert store.reads.get_job(job.id).status is JobStatus.FAILED  # type: ignore[union-attr]
    finally:
        store.close()


@pytest.mark.parametrize(
    "kwargs", [{"reap_interval": 0}, {"prune_interval": 0}, {"retention": timedelta(0)}]
)
def test_bad_schedules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        create_app("sqlite://", **kwargs)  # type: ignore[arg-type]
