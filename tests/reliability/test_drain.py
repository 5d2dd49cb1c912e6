"""``joblog drain``: what a journal (or a dead-letter file) holds is stored once, whatever
was shipped before, and every hostile input gets a clear answer instead of a traceback."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from joblog._ops import InsertEvents
from joblog.cli import main
from joblog.journal import Journal, encode_event_row
from joblog.storage.store import Store
from tests.reliability.conftest import Record
from tests.support.db import events

EXTERNAL = "drain-1"
LINES = 3000


def fill(directory: Path, lines: int = LINES, message: str = "line {}") -> None:
    """A journal as a killed producer leaves it: records synced, nothing shipped."""
    journal = Journal(directory)
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with journal.lock:
        for i in range(lines):
            row = (None, None, EXTERNAL, "INFO", message.format(i), None, ts, None, None)
            journal.append(encode_event_row(row))
    journal.close()


def ship_part(directory: Path, url: str, *, commit: bool) -> int:
    """One batch shipped as a writer would, stopped (``commit=False``) between the
    database's commit and the cursor's move: the crash window of exactly-once."""
    journal = Journal(directory)
    store = Store(url)
    batch = journal.read_batch(500)
    assert batch is not None
    journal.begin(batch)
    assert store.apply_batch(batch.ops, batch.key)
    if commit:
        journal.commit(batch)
    journal.close()
    store.close()
    return batch.events


def drain(*args: str) -> Result:
    return CliRunner().invoke(main, ["drain", *args])


def stored(url: str) -> list[str]:
    store = Store(url)
    try:
        return [row["message"] for row in events(store) if row["external_job_id"] == EXTERNAL]
    finally:
        store.close()


class TestExactlyOnce:
    def test_a_half_shipped_journal_is_drained_once_and_twice_is_harmless(
        self, database_url: str, tmp_path: Path, reliability: Record
    ) -> None:
        Store(database_url).close()
        directory = tmp_path / "journal"
        fill(directory)
        ship_part(directory, database_url, commit=True)
        ship_part(directory, database_url, commit=False)  # stored, cursor not moved
        first = drain("--url", database_url, str(directory))
        assert first.exit_code == 0, first.output
        assert "already stored 1," in first.output
        messages = stored(database_url)
        assert len(messages) == len(set(messages)) == LINES
        again = drain("--url", database_url, str(directory))
        assert again.exit_code != 0 or "shipped 0 event" in again.output
        assert len(stored(database_url)) == LINES
        reliability.injected = (
            "a journal of 3000 lines: one batch shipped, one stored but its cursor not moved "
            "(killed in between); drained twice"
        )
        summary = first.output.strip().split(": ", 1)[1]
        reliability.measured = {"drain": summary, "stored": LINES, "duplicated": 0}

    def test_the_default_root_of_the_url_is_drained(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'd.db'}"
        Store(url).close()
        fill(tmp_path / "d.db.joblog-journal" / "spill-1-abc", lines=10)
        fill(tmp_path / "d.db.joblog-journal" / "main", lines=5)
        result = drain("--url", url)
        assert result.exit_code == 0, result.output
        assert result.output.count("shipped") == 2
        assert len(stored(url)) == 15
        assert not list((tmp_path / "d.db.joblog-journal").iterdir())  # drained, removed

    def test_nothing_to_drain_is_said(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'd.db'}"
        Store(url).close()
        result = drain("--url", url)
        assert result.exit_code == 0 and "nothing to drain" in result.output

    def test_a_dead_letter_file_drains_once_under_either_name(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'd.db'}"
        Store(url).close()
        ts = datetime(2026, 1, 2, tzinfo=UTC)
        rows = [(None, None, EXTERNAL, "INFO", f"dl {i}", None, ts, None, None) for i in range(3)]
        from joblog.dead_letter import DeadLetter

        dead = DeadLetter(tmp_path / "dead.jsonl")
        for row in rows:
            dead.append(InsertEvents([row]), "refused once")
        first = drain("--url", url, str(dead.path))
        assert first.exit_code == 0 and "in 3 batch(es)" in first.output, first.output
        again = CliRunner().invoke(main, ["replay", "--url", url, str(dead.path)])
        assert again.exit_code == 0 and "already stored 3," in again.output, again.output
        assert sorted(stored(url)) == ["dl 0", "dl 1", "dl 2"]


class TestHostileInput:
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        url = f"sqlite:///{tmp_path / 'h.db'}"
        Store(url).close()
        return url

    def test_a_journal_in_use_names_its_process(self, url: str, tmp_path: Path) -> None:
        fill(tmp_path / "j", lines=3)
        holder = Journal(tmp_path / "j")
        try:
            result = drain("--url", url, str(tmp_path / "j"))
        finally:
            holder.close()
        assert result.exit_code == 1
        assert f"in use by process {os.getpid()}" in result.output
        assert isinstance(result.exception, SystemExit)  # no traceback
        assert stored(url) == []

    def test_cut_and_corrupt_records_are_skipped_and_counted(
        self, url: str, tmp_path: Path
    ) -> None:
        fill(tmp_path / "j", lines=2, message="ok {}")
        segment = sorted((tmp_path / "j").glob("seg-*.jsonl"))[0]
        with segment.open("ab") as out:
            out.write(b'\xff\xfe\x00 not json\n{"op": "Nope"}\n[]\n{"op":"InsertEvents","ro')
        result = drain("--url", url, str(tmp_path / "j"))
        assert result.exit_code == 0, result.output
        assert "shipped 2 event(s)" in result.output
        assert "corrupt lines skipped 4" in result.output
        assert sorted(stored(url)) == ["ok 0", "ok 1"]

    def test_an_id_file_of_garbage_gets_a_new_id(self, url: str, tmp_path: Path) -> None:
        fill(tmp_path / "j", lines=4)
        (tmp_path / "j" / "id").write_bytes(b"\x00\xff spaces and \xe2\x80\xae" * 50)
        result = drain("--url", url, str(tmp_path / "j"))
        assert result.exit_code == 0, result.output
        assert len(stored(url)) == 4

    def test_hostile_text_in_records_is_stored(self, url: str, tmp_path: Path) -> None:
        fill(tmp_path / "j", lines=1, message="nul \x00 surrogate \udcff rtl \u202e {}")
        result = drain("--url", url, str(tmp_path / "j"))
        assert result.exit_code == 0, result.output
        assert "shipped 1 event(s)" in result.output
        assert len(stored(url)) == 1

    def test_a_directory_that_is_no_journal_is_refused(self, url: str, tmp_path: Path) -> None:
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain" / "notes.txt").write_text("hello")
        result = drain("--url", url, str(tmp_path / "plain"))
        assert result.exit_code == 1 and "neither a journal" in result.output

    def test_a_missing_path_is_a_usage_error(self, url: str, tmp_path: Path) -> None:
        result = drain("--url", url, str(tmp_path / "nowhere"))
        assert result.exit_code == 2 and "does not exist" in result.output

    def test_a_file_that_is_no_dead_letter_file_is_refused(self, url: str, tmp_path: Path) -> None:
        garbage = tmp_path / "garbage.bin"
        garbage.write_bytes(
            os.urandom(4096) + b"\n\x00\n" + "\udcff".encode("utf-8", "surrogatepass")
        )
        result = drain("--url", url, str(garbage))
        assert result.exit_code == 1 and "no record" in result.output
        assert isinstance(result.exception, SystemExit)

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
    def test_an_unreadable_file_is_a_usage_error(self, url: str, tmp_path: Path) -> None:
        locked = tmp_path / "dead.jsonl"
        locked.write_text("")
        locked.chmod(0)
        result = drain("--url", url, str(locked))
        assert result.exit_code == 2 and "not readable" in result.output

    def test_a_url_without_a_database_creates_none(self, tmp_path: Path) -> None:
        missing = tmp_path / "typo.db"
        fill(tmp_path / "j", lines=1)
        result = drain("--url", f"sqlite:///{missing}", str(tmp_path / "j"))
        assert result.exit_code == 1 and "no joblog database" in result.output
        assert not missing.exists()
        assert list((tmp_path / "j").glob("seg-*.jsonl"))  # left for a drain that can ship

    def test_an_unreachable_server_leaves_the_journal(self, url: str, tmp_path: Path) -> None:
        fill(tmp_path / "j", lines=5)
        result = drain("--server", "http://127.0.0.1:9", str(tmp_path / "j"))
        assert result.exit_code == 1 and "left for the next drain" in result.output
        again = drain("--url", url, str(tmp_path / "j"))
        assert again.exit_code == 0 and len(stored(url)) == 5


class TestDefaultRoot:
    def test_a_journal_beside_a_sqlite_file_does_not_break_sqlite(self, tmp_path: Path) -> None:
        """``<db>-journal`` is SQLite's rollback journal: a directory of that name makes
        every later open of the database fail with "disk I/O error"."""
        import joblog

        path = tmp_path / "t.db"
        with joblog.Tracker(f"sqlite:///{path}", durability="journal") as tracker:
            assert tracker.stats().journal_path == str(tmp_path / "t.db.joblog-journal" / "main")
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM job_tracking").fetchone() == (0,)

    def test_each_server_database_gets_its_own_root(self) -> None:
        from joblog.journal import default_root

        first = default_root(None, "postgresql+psycopg://u:***@h/one")
        second = default_root(None, "postgresql+psycopg://u:***@h/two")
        assert first != second and first.parent == second.parent


class TestHostileCursor:
    @pytest.mark.parametrize(
        "cursor",
        [
            '{"segment": 999999999, "offset": 0}',
            '{"segment": -5, "offset": -1}',
            '{"segment": 1, "offset": 0, "pending": {"segment": 99999, "offset": 0, "key": "k"}}',
            "\x00\xff not json",
        ],
    )
    def test_a_bogus_cursor_ships_everything_and_loses_nothing(
        self, cursor: str, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'c.db'}"
        Store(url).close()
        fill(tmp_path / "j", lines=7)
        (tmp_path / "j" / "cursor.json").write_text(cursor, errors="surrogateescape")
        result = drain("--url", url, str(tmp_path / "j"))
        assert result.exit_code == 0, result.output
        assert len(stored(url)) == 7

    def test_a_segment_file_is_not_drained_as_a_dead_letter_file(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'c.db'}"
        Store(url).close()
        fill(tmp_path / "j", lines=2)
        segment = sorted((tmp_path / "j").glob("seg-*.jsonl"))[0]
        result = drain("--url", url, str(segment))
        assert result.exit_code == 2 and "drain its directory" in result.output
        assert stored(url) == []
