"""Where the journal goes by default: beside a SQLite file, but never on SQLite's own path."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import joblog
from joblog.journal import default_root


class TestDefaultRoot:
    def test_it_is_not_sqlites_rollback_journal(self, tmp_path: Path) -> None:
        database = tmp_path / "jobs.db"
        root = default_root(str(database))
        assert root.parent == tmp_path
        assert root.name != "jobs.db-journal"

    def test_a_new_connection_opens_the_database_while_a_journal_is_there(
        self, tmp_path: Path
    ) -> None:
        database = tmp_path / "jobs.db"
        tracker = joblog.Tracker(f"sqlite:///{database}", durability="journal")
        log = logging.getLogger("journal.location")
        log.setLevel(logging.INFO)
        tracker.install_logging(log)
        try:
            with tracker.job("failover", "live"):
                for i in range(100):
                    log.info("line %d", i)
            assert tracker.flush(30)
            assert default_root(str(database)).is_dir()
            # A directory at <db>-journal would be taken for a hot journal: disk I/O error.
            conn = sqlite3.connect(database)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                assert conn.execute("SELECT COUNT(*) FROM log_events").fetchone()[0] == 100
            finally:
                conn.close()
        finally:
            tracker.close()
