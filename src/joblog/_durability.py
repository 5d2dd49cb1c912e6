"""The durability options of a Tracker and a Client, decided in one place.

Both hand their log events to a :class:`~joblog.writer.BatchWriter`; these options say
which journal backs its memory queue (:mod:`joblog.journal`):

- ``durability="memory"``: events go through memory; only when the queue is full do they
  spill to a journal of this process's own (``<root>/spill-<pid>-<random>``), removed once
  shipped. A crash leaves it for ``joblog drain``.
- ``durability="journal"``: every event is appended to the journal before the call
  returns (synced every ``journal_sync_interval`` s), in ``journal_dir`` or
  ``<root>/main``; the next Tracker or Client on it, or ``joblog drain``, ships what a
  crash left.

``journal_max_bytes`` bounds the journal; past it ``journal_overflow`` drops (counted) or
blocks the caller.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from joblog.exceptions import ConfigError
from joblog.journal import DEFAULT_MAX_BYTES, Journal, default_root

if TYPE_CHECKING:
    from joblog.storage.store import Store

__all__ = ["Durability", "DurabilityName", "OverflowPolicy", "database_root", "server_root"]

DurabilityName = Literal["memory", "journal"]
OverflowPolicy = Literal["drop", "block"]


@dataclass(frozen=True, slots=True)
class Durability:
    """The journal options as given to a Tracker or a Client, checked."""

    durability: DurabilityName = "memory"
    journal_dir: str | os.PathLike[str] | None = None
    journal_max_bytes: int = DEFAULT_MAX_BYTES
    journal_sync_interval: float = 0.05
    journal_overflow: OverflowPolicy = "drop"

    def __post_init__(self) -> None:
        if self.durability not in ("memory", "journal"):
            raise ConfigError("durability must be 'memory' or 'journal'")
        if self.journal_overflow not in ("drop", "block"):
            raise ConfigError("journal_overflow must be 'drop' or 'block'")
        if isinstance(self.journal_max_bytes, bool) or not (
            isinstance(self.journal_max_bytes, int) and self.journal_max_bytes > 0
        ):
            raise ConfigError("journal_max_bytes must be a positive number of bytes")
        interval = self.journal_sync_interval
        if isinstance(interval, bool) or not (
            isinstance(interval, int | float) and 0 < interval < float("inf")
        ):
            raise ConfigError("journal_sync_interval must be a positive number of seconds")
        if self.journal_dir is not None and not str(self.journal_dir).strip():
            raise ConfigError("journal_dir must not be empty")

    def directory(self, root: Path) -> Path:
        """The journal's directory under ``root`` (the default root of the database or
        server), unless ``journal_dir`` names one."""
        if self.journal_dir is not None:
            return Path(self.journal_dir)
        if self.durability == "journal":
            return root / "main"
        return root / f"spill-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def writer_options(self, root: Path) -> dict[str, Any]:
        """The :class:`~joblog.writer.BatchWriter` keyword arguments these options mean."""
        directory = self.directory(root)
        max_bytes = self.journal_max_bytes
        opener: Callable[[], Journal] = lambda: Journal(directory, max_bytes=max_bytes)  # noqa: E731
        return {
            "journal": opener,
            "journal_all": self.durability == "journal",
            "overflow": self.journal_overflow,
            "sync_interval": float(self.journal_sync_interval),
        }


def database_root(store: Store) -> Path:
    """Where the journals of a Tracker on ``store`` go by default (``joblog drain --url``
    looks there): beside a SQLite file, else one cache directory per database URL."""
    return default_root(store.local_file, store.url.render_as_string(hide_password=True))


def server_root(base_url: str) -> Path:
    """Where the journals of a Client of the server at ``base_url`` go by default."""
    return default_root(None, base_url.strip().rstrip("/"))
