"""The dead-letter file: what the batch writer could not store, kept for ``joblog replay``.

One JSON object a line, appended and flushed at once (a crash loses no line written):
``{"op": "InsertEvents", "rows": [...], "error": "...", "at": "..."}``, the other ops
with their ``values``. Datetimes are written as ``{"$dt": "<ISO-8601>"}`` so that they
come back as datetimes. :func:`read` parses a file back into ops, each with a key derived
from its line, which replay uses as the batch key: a line replayed twice is stored once.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joblog._ops import EventRow, InsertEvents, InsertJob, InsertStep, Op, UpdateJob, UpdateStep

__all__ = ["DeadLetter", "default_path", "read"]

_OPS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (InsertJob, UpdateJob, InsertStep, UpdateStep, InsertEvents)
}


def default_path(database_path: str | None) -> Path:
    """Beside a SQLite database file, else in the user's cache directory."""
    name = f"joblog-dead-letter-{os.getpid()}.jsonl"
    if database_path:
        return Path(database_path).resolve().parent / name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "joblog"
    return cache / name


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class DeadLetter:
    """Appends ops that failed for good; created on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, op: Op, error: str) -> None:
        body: dict[str, Any] = {"op": type(op).__name__}
        for field in fields(op):
            body[field.name] = _encode(getattr(op, field.name))
        body["error"] = error
        body["at"] = datetime.now(UTC).isoformat()
        line = json.dumps(body, ensure_ascii=False, default=repr)
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
                body = json.loads(line)
                cls = _OPS[body["op"]]
                if cls is InsertEvents:
                    rows: list[EventRow] = [tuple(_decode(row)) for row in body["rows"]]
                    op: Op = InsertEvents(rows)
                elif cls in (UpdateJob,):
                    op = UpdateJob(body["job_id"], _decode(body["values"]))
                elif cls is UpdateStep:
                    op = UpdateStep(int(body["step_id"]), _decode(body["values"]))
                else:
                    op = cls(_decode(body["values"]))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a dead-letter line ({error})") from error
            key = "replay:" + hashlib.sha256(line.strip().encode()).hexdigest()[:40]
            yield number, key, op
