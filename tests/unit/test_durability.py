"""The durability options, checked in one place for the Tracker and the Client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import joblog
from joblog._durability import Durability
from joblog.client import Client
from joblog.exceptions import ConfigError

BAD = [
    {"durability": "disk"},
    {"durability": None},
    {"journal_overflow": "wait"},
    {"journal_max_bytes": 0},
    {"journal_max_bytes": True},
    {"journal_max_bytes": 1.5},
    {"journal_sync_interval": 0},
    {"journal_sync_interval": float("nan")},
    {"journal_sync_interval": float("inf")},
    {"journal_sync_interval": "1"},
    {"journal_dir": " "},
]


class TestDurability:
    @pytest.mark.parametrize("options", BAD, ids=repr)
    def test_a_bad_value_is_a_config_error(self, options: dict[str, Any]) -> None:
        with pytest.raises(ConfigError):
            Durability(**options)

    @pytest.mark.parametrize("options", BAD[:4], ids=repr)
    def test_the_tracker_and_the_client_refuse_alike(
        self, options: dict[str, Any], tmp_path: Path
    ) -> None:
        with pytest.raises(ConfigError):
            joblog.Tracker(f"sqlite:///{tmp_path / 'd.db'}", **options)
        with pytest.raises(ConfigError):
            Client("http://127.0.0.1:9", "token", **options)

    def test_journal_durability_uses_main_under_the_root(self, tmp_path: Path) -> None:
        options = Durability("journal").writer_options(tmp_path)
        assert options["journal_all"] is True
        assert Durability("journal").directory(tmp_path) == tmp_path / "main"
        assert Durability().directory(tmp_path).name.startswith("spill-")
        assert Durability(journal_dir=tmp_path / "x").directory(Path("/elsewhere")) == (
            tmp_path / "x"
        )

    def test_two_clients_on_one_journal_are_refused(self, tmp_path: Path) -> None:
        first = Client("http://127.0.0.1:9", "t", durability="journal", journal_dir=tmp_path)
        try:
            with pytest.raises(joblog.JobLogError, match="in use by process"):
                Client("http://127.0.0.1:9", "t", durability="journal", journal_dir=tmp_path)
        finally:
            first.close(timeout=1)
