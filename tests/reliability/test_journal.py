"""The journal: a full memory queue spills to disk and nothing is dropped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from joblog._ops import InsertEvents
from joblog.journal import Journal, JournalLocked
from joblog.stdlib import make_event_row
from joblog.storage.store import Store
from joblog.writer import BatchWriter


class TestSpill:
    def test_a_burst_into_a_tiny_queue_stores_every_event(self, tmp_path: Path) -> None:
        store = Store(f"sqlite:///{tmp_path / 'j.db'}")
        writer = BatchWriter(
            store,
            make_event_row,
            batch_size=10,
            max_queue=50,
            journal=lambda: Journal(tmp_path / "journal"),
        )
        record = logging.makeLogRecord({"name": "burst", "msg": "line", "levelno": 20})
        for _ in range(20_000):
            writer.put_event(((None, None, None), "line", record, (None, None)))
        assert writer.flush(60)
        stats = writer.stats()
        writer.close()
        assert stats.dropped == 0
        assert stats.spilled > 0
        assert stats.written == 20_000
        assert stats.shipped == stats.spilled
        store.close()


class TestLock:
    def test_a_second_open_of_one_journal_is_refused(self, tmp_path: Path) -> None:
        first = Journal(tmp_path / "j")
        with pytest.raises(JournalLocked, match="in use by process"):
            Journal(tmp_path / "j")
        first.close()
        Journal(tmp_path / "j").close()


class TestHostileContents:
    def test_cut_and_corrupt_records_are_skipped_and_counted(self, tmp_path: Path) -> None:
        journal = Journal(tmp_path / "j")
        journal.close()
        (tmp_path / "j" / "seg-00000001.jsonl").write_bytes(
            b'{"op":"InsertEvents","rows":[[null,null,null,"INFO","a",null,{"$dt":"2025-01-01T00:00:00"}]]}\n'
            b"\xff\xfe not json\n"
            b'{"op":"Nope"}\n'
            b'{"op":"InsertEvents","rows":[[null,null,null,"INFO","b",null,{"$dt":"2025-01-01T00:00:00"}]]}\n'
            b'{"op":"InsertEvents","rows":[[null,nu'
        )
        journal = Journal(tmp_path / "j")
        messages = []
        while (batch := journal.read_batch(100)) is not None:
            journal.begin(batch)
            for op in batch.ops:
                assert isinstance(op, InsertEvents)
                messages += [row[4] for row in op.rows]
            journal.commit(batch)
        assert messages == ["a", "b"]
        assert journal.corrupt == 3
        journal.close()


class TestTrackerJournal:
    def test_durability_journal_stores_every_event_and_reships_nothing(
        self, tmp_path: Path
    ) -> None:
        import joblog

        url = f"sqlite:///{tmp_path / 't.db'}"
        with joblog.Tracker(url, durability="journal", journal_dir=str(tmp_path / "jd")) as tracker:
            log = logging.getLogger("journal.test")
            log.setLevel(logging.INFO)
            tracker.install_logging(log)
            with tracker.job("backup", "burst"):
                for i in range(3000):
                    log.info("copied block %d", i)
            assert tracker.flush(60)
            stats = tracker.stats()
        assert stats.dropped == 0 and stats.spilled >= 3000
        again = joblog.Tracker(url, durability="journal", journal_dir=str(tmp_path / "jd"))
        assert again.flush(30)
        again.close()
        import sqlite3

        with sqlite3.connect(tmp_path / "t.db") as db:
            count = db.execute("SELECT count(*) FROM log_events WHERE message LIKE 'copied%'")
            assert count.fetchone()[0] == 3000


KILLED_PRODUCER = """
import logging, os, signal, sys, time
import joblog

url, journal_dir = sys.argv[1], sys.argv[2]
tracker = joblog.Tracker(url, durability="journal", journal_dir=journal_dir)
log = logging.getLogger("killed")
log.setLevel(logging.INFO)
tracker.install_logging(log)
with tracker.job("backup", "killed"):
    for i in range(5000):
        log.info("copied block %d of disk %s", i, "disk-0", extra={"bytes": 65536})
    time.sleep(0.5)  # ten sync intervals: every line is on disk
    print("logged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


class TestKilledProducer:
    def test_sigkill_loses_nothing_synced_and_the_next_tracker_ships_it_once(
        self, tmp_path: Path
    ) -> None:
        """The database is held write-locked while the producer runs, so nothing it logs
        can be stored before the SIGKILL: every stored line came from the journal."""
        import sqlite3
        import subprocess
        import sys

        import joblog

        path = tmp_path / "k.db"
        url = f"sqlite:///{path}"
        joblog.Tracker(url).close()  # migrated before the lock is taken
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("PRAGMA journal_mode=WAL")
        blocker.execute("BEGIN IMMEDIATE")
        try:
            done = subprocess.run(
                [sys.executable, "-c", KILLED_PRODUCER, url, str(tmp_path / "jd")],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert done.returncode == -9, done.stderr
        assert "logged" in done.stdout
        with sqlite3.connect(path) as db:
            before = db.execute("SELECT count(*) FROM log_events WHERE message LIKE 'copied%'")
            assert before.fetchone()[0] == 0
        again = joblog.Tracker(url, durability="journal", journal_dir=str(tmp_path / "jd"))
        assert again.flush(60)
        again.close()
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT count(*), count(DISTINCT message) FROM log_events"
                " WHERE message LIKE 'copied%'"
            ).fetchone()
        assert rows == (5000, 5000)


class TestRecordFormat:
    def test_an_event_row_round_trips_with_its_trace_ids(self) -> None:
        from datetime import datetime

        from joblog.journal import decode_line, encode_event_row

        row = ("j", 7, "x", "INFO", "m\u2028", '{"a": 1}', datetime(2026, 1, 2, 3, 4, 5, 6),
               "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")  # fmt: skip
        assert decode_line(encode_event_row(row)) == InsertEvents([row])

    def test_a_record_written_before_the_trace_columns_still_reads(self) -> None:
        from joblog.journal import decode_line

        line = (
            '{"op":"InsertEvents","rows":[["j",null,"x","INFO","m",null,'
            '{"$dt":"2026-01-02T03:04:05"}]]}'
        )
        (row,) = decode_line(line).rows  # type: ignore[union-attr]
        assert row[7:] == (None, None) and row[:5] == ("j", None, "x", "INFO", "m")

    @pytest.mark.parametrize("columns", [6, 8, 10])
    def test_a_row_of_another_width_is_not_a_record(self, columns: int) -> None:
        from joblog.journal import decode_line

        values = ",".join(["null"] * columns)
        with pytest.raises(ValueError):
            decode_line('{"op":"InsertEvents","rows":[[' + values + "]]}")
