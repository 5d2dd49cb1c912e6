"""The dead-letter file: what the batch writer could not store, kept for ``joblog replay``.

One JSON object a line, appended and flushed at once (a crash loses no line written), in
the journal's record format (:mod:`joblog.journal`) with two more fields:
``{"op": "InsertEvents", "rows": [...], "error": "...", "at": "..."}``, the other ops
with their ``values``. Datetimes are written as ``{"$dt": "<ISO-8601>"}`` so that they
come back as datetimes. :func:`read` parses a file back into ops, each with a key derived
from its line, which replay uses as the batch key: a line replayed twice is stored once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from joblog._ops import Op
from joblog.journal import decode_line, encode_op

__all__ = ["DeadLetter", "default_path", "line_key", "read"]


def default_path(database_path: str | None) -> Path:
    """Beside a SQLite database file, else in the user's cache directory."""
    name = f"joblog-dead-letter-{os.getpid()}.jsonl"
    if database_path:
        return Path(database_path).resolve().parent / name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "joblog"
    return cache / name


class DeadLetter:
    """Appends ops that failed for good; created on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, op: Op, error: str) -> None:
        line = encode_op(op, error=error, at=datetime.now(UTC).isoformat())
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8", errors="replace") as out:
                out.write(line + "\n")
                out.flush()


def read(path: str | Path) -> Iterator[tuple[int, str, Op]]:
    """(line number, key, op) of every line; ValueError names a line that is not one."""
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                op = decode_line(line)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: not a dead-letter line ({error})") from error
            yield number, line_key(line), op


def line_key(line: str) -> str:
    """The batch key of a dead-letter line: the same line is stored once, however often
    it is replayed."""
    return (
        "replay:" + hashlib.sha256(line.strip().encode("utf-8", "surrogatepass")).hexdigest()[:40]
    )
