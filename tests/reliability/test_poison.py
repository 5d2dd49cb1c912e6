"""Poison input and injected failures: the writer never dies and never drops a line.

Each case logs one hostile line inside a job (or makes the database refuse something,
or injects an exception where the writer calls the database), then 1,000 ordinary
lines; all of them must be stored, the hostile line too (made storable), and
``stats().healthy`` must tell the truth. On SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import joblog
from joblog._ops import InsertJob, InsertStep, Op
from joblog.cli import main
from joblog.exceptions import DataRejected
from joblog.storage.store import Store
from tests.reliability.conftest import Record

NORMAL_LINES = 1000


class Circular:
    def __init__(self) -> None:
        self.me = self

    def __repr__(self) -> str:
        raise RuntimeError("repr refuses")


def deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["n"] = {}
        node = node["n"]
    return root


def circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"name": "loop"}
    value["self"] = value
    return value


POISONS: dict[str, tuple[str, dict[str, Any]]] = {
    "lone surrogate (os.fsdecode of a non-UTF-8 name)": ("copy /vm/disk-\udcff.vmdk", {}),
    "NUL in message and attrs": ("a\x00b", {"path": "x\x00y"}),
    "surrogate in attrs key and value": ("attrs", {"f\udcffile": "/vm/\udcfe"}),
    "40-deep JSON attrs": ("deep", {"tree": deep(40)}),
    "10 MB attrs": ("huge", {"blob": "x" * (10 * 1024 * 1024)}),
    "circular attrs": ("circular", {"loop": circular_dict()}),
    "attrs whose repr raises": ("raising repr", {"obj": Circular()}),
    "tuple keys and NaN": ("odd", {"m": {(1, 2): float("nan")}, "inf": float("inf")}),
}


@pytest.fixture
def url(database_url: str) -> str:
    return database_url


@pytest.fixture
def tracker(url: str, tmp_path: Path) -> Iterator[joblog.Tracker]:
    tracker = joblog.Tracker(
        url, flush_interval=0.02, dead_letter_path=str(tmp_path / "dead.jsonl")
    )
    yield tracker
    tracker.close()


def stored_messages(store: Store, external_job_id: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT message FROM log_events WHERE external_job_id = :e ORDER BY id"),
                {"e": external_job_id},
            ).scalars()
        )


def run_job(
    tracker: joblog.Tracker, external: str, poison: Callable[[logging.Logger], None]
) -> None:
    log = logging.getLogger(f"poison.{uuid.uuid4().hex[:6]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    tracker.install_logging(logger=log)
    try:
        with tracker.job("failover", "live", external_job_id=external) as job:
            with job.step("copy"):
                poison(log)
                for n in range(NORMAL_LINES):
                    log.info("normal line %d", n)
    finally:
        tracker.uninstall_logging()
    assert tracker.flush(60)


@pytest.mark.parametrize("case", list(POISONS))
def test_hostile_content_is_stored_and_the_writer_lives(
    tracker: joblog.Tracker, case: str, reliability: Record
) -> None:
    message, attrs = POISONS[case]
    external = f"poison-{uuid.uuid4().hex[:8]}"
    run_job(tracker, external, lambda log: log.warning(message, extra={"a": attrs}))
    stored = stored_messages(tracker.store, external)
    assert len(stored) == NORMAL_LINES + 1
    assert stored[1:] == [f"normal line {n}" for n in range(NORMAL_LINES)]
    assert "\x00" not in stored[0]
    stats = tracker.stats()
    assert stats.healthy and stats.failed == 0 and stats.dead_lettered == 0
    summary = tracker.resolve(external)
    assert summary.job.status.value == "completed"
    reliability.injected = case
    reliability.measured = {"lines stored": f"{len(stored)}/{NORMAL_LINES + 1}"}


class FaultySink:
    """Wraps the store's apply_batch; ``fault(ops)`` may raise (a driver error, anything)."""

    def __init__(self, store: Store, fault: Callable[[list[Op]], None]) -> None:
        self.store = store
        self.fault = fault
        self.real = store.apply_batch

    def __call__(self, ops: list[Op], batch_key: str | None = None) -> bool:
        self.fault(list(ops))
        return self.real(ops, batch_key)


def test_any_exception_from_the_database_layer_costs_one_batch_at_most(
    tracker: joblog.Tracker, monkeypatch: pytest.MonkeyPatch, reliability: Record
) -> None:
    """A raw exception of any class (not a StorageError), once: the batch is split, every
    op stored, and the writer goes on."""
    raised: list[int] = []

    def once(ops: list[Op]) -> None:
        if len(ops) > 1 and not raised:
            raised.append(1)
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "injected")

    monkeypatch.setattr(tracker.store, "apply_batch", FaultySink(tracker.store, once))
    external = f"fault-{uuid.uuid4().hex[:8]}"
    run_job(tracker, external, lambda log: log.info("first"))
    assert raised
    assert len(stored_messages(tracker.store, external)) == NORMAL_LINES + 1
    assert tracker.stats().healthy
    reliability.injected = "UnicodeEncodeError from apply_batch (not a StorageError)"
    reliability.measured = {"lines stored": NORMAL_LINES + 1}


def test_events_of_a_refused_job_row_are_kept_by_external_id(
    tracker: joblog.Tracker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, reliability: Record
) -> None:
    """The database refuses the job row for good: its events are stored detached (job_id
    NULL, external_job_id kept), so the job is still found; the job and step rows go to
    the dead-letter file, and ``joblog replay`` stores them later, once."""
    external = f"refused-{uuid.uuid4().hex[:8]}"

    def refuse_the_job(ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, InsertJob) and op.values.get("external_job_id") == external:
                raise DataRejected("injected: the database refused the job row")

    monkeypatch.setattr(tracker.store, "apply_batch", FaultySink(tracker.store, refuse_the_job))
    run_job(tracker, external, lambda log: log.info("first"))
    assert len(stored_messages(tracker.store, external)) == NORMAL_LINES + 1
    summary = tracker.resolve(external)
    assert summary.resolved_by is joblog.ResolvedBy.LOG_EVENTS
    stats = tracker.stats()
    assert stats.dead_lettered >= 1 and stats.dead_letter_path == str(tmp_path / "dead.jsonl")
    lines = [json.loads(line) for line in Path(stats.dead_letter_path).read_text().splitlines()]
    assert {"InsertJob", "InsertStep"} <= {line["op"] for line in lines}

    monkeypatch.undo()  # the database takes the rows again
    url = tracker.store.url.render_as_string(hide_password=False)
    first = CliRunner().invoke(main, ["replay", "--url", url, stats.dead_letter_path])
    assert "refused 0" in first.output, first.output
    again = CliRunner().invoke(main, ["replay", "--url", url, stats.dead_letter_path])
    assert again.exit_code == 0 and "in 0 batch(es)" in again.output, again.output
    assert tracker.resolve(external).job.external_job_id == external
    reliability.injected = "DataRejected on the job row, for good"
    reliability.measured = {
        "events stored": NORMAL_LINES + 1,
        "dead-lettered ops": stats.dead_lettered,
        "replayed": first.output.strip(),
    }


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_thread_is_restarted_and_flush_returns(
    tracker: joblog.Tracker, monkeypatch: pytest.MonkeyPatch, reliability: Record
) -> None:
    """Even a BaseException (which the writer does not catch) only stops the thread:
    ``healthy`` says so, the next call starts it again, flush() returns."""
    calls: list[int] = []

    def die_once(ops: list[Op]) -> None:
        if not calls:
            calls.append(1)
            raise SystemExit("injected: the writer thread dies")

    tracker.flush(10)
    monkeypatch.setattr(tracker.store, "apply_batch", FaultySink(tracker.store, die_once))
    tracker.log_event("INFO", "kills the writer")
    writer = tracker.writer
    writer._thread.join(10)  # the thread has died
    assert not tracker.stats().healthy
    external = f"revived-{uuid.uuid4().hex[:8]}"
    run_job(tracker, external, lambda log: log.info("first"))
    assert len(stored_messages(tracker.store, external)) == NORMAL_LINES + 1
    stats = tracker.stats()
    assert stats.restarts == 1 and stats.healthy
    reliability.injected = "SystemExit in the writer thread"
    reliability.measured = {"restarts": stats.restarts, "lines stored": NORMAL_LINES + 1}


def test_a_step_of_an_unknown_job_is_dead_lettered_not_fatal(
    tracker: joblog.Tracker, reliability: Record
) -> None:
    """A step row whose job does not exist (the foreign key refuses it for good)."""
    tracker.writer.put_op(
        InsertStep(
            {
                "id": 123456789,
                "job_id": str(uuid.uuid4()),
                "seq": 1,
                "name": "orphan",
                "status": "running",
                "weight": 1.0,
                "allow_failure": False,
                "started_at": None,
            }
        )
    )
    external = f"after-orphan-{uuid.uuid4().hex[:8]}"
    run_job(tracker, external, lambda log: log.info("first"))
    assert len(stored_messages(tracker.store, external)) == NORMAL_LINES + 1
    stats = tracker.stats()
    assert stats.failed == 1 and stats.dead_lettered == 1
    reliability.injected = "a step row the foreign key refuses"
    reliability.measured = {"failed": stats.failed, "dead-lettered": stats.dead_lettered}
