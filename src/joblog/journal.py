"""The local journal: append-only segment files that hold what the writer has not stored yet.

A journal is a directory::

    LOCK                 fcntl lock of the one process using it (its pid inside)
    id                   this journal's random ID (part of every batch key it ships)
    cursor.json          where shipping stands, and the batch being shipped (see below)
    seg-00000001.jsonl   records, one JSON object a line, appended in order

A record is one line in the format of the dead-letter file (:mod:`joblog.dead_letter`):
``{"op": "InsertEvents", "rows": [[job_id, step_id, external_job_id, level, message,
attrs, {"$dt": ts}]]}``, the other ops with their ``values``; datetimes as ``{"$dt": ISO}``.
A line that is not complete (no newline: the writer was killed mid-record) or does not
parse is skipped and counted in ``corrupt``; bytes that are not UTF-8 (a lone surrogate
written by ``surrogatepass``, a flipped bit) are read as U+FFFD, so the rest of the record
is kept. Nothing in a file can stop the reader.

Exactly once: before a batch is shipped its end and its key (``journal:<id>:<seg>:<off>``)
are written to ``cursor.json``; after the database committed it, the cursor moves past it.
A process killed in between ships the same lines under the same key next time, and the
database's ``ingest_batches`` refuses the second copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import json.encoder as json_encoder
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from joblog._ops import (
    EVENT_COLUMNS,
    EventRow,
    InsertEvents,
    InsertJob,
    InsertStep,
    Op,
    UpdateJob,
    UpdateStep,
)
from joblog.exceptions import JobLogError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Batch",
    "Journal",
    "JournalLocked",
    "decode_line",
    "default_root",
    "encode_event_row",
    "encode_op",
    "journals_under",
]

DEFAULT_MAX_BYTES = 1 << 30
SEGMENT_BYTES = 64 << 20
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_OPS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (InsertJob, UpdateJob, InsertStep, UpdateStep, InsertEvents)
}


class JournalLocked(JobLogError):
    """Another process holds this journal; give each process its own ``journal_dir``."""


def default_root(database_path: str | None, source: str | None = None) -> Path:
    """Beside a SQLite database file, else in the user's cache directory, one directory
    per database or server (``source``: its URL without the password), so that journals
    meant for one database are never shipped to another.

    Not ``<database>-journal``: that is SQLite's rollback journal, and a directory of that
    name makes SQLite fail to open the database ("disk I/O error")."""
    if database_path:
        path = Path(database_path).resolve()
        return path.parent / f"{path.name}.joblog-journal"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "joblog"
    if source is None:
        return cache / "journal"
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return cache / "journal" / digest


# -- the record format (shared with the dead-letter file) -----------------------------------


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


def encode_op(op: Op, **extra: Any) -> str:
    """One record line (without its newline)."""
    body: dict[str, Any] = {"op": type(op).__name__}
    for field in fields(op):
        body[field.name] = _encode(getattr(op, field.name))
    body.update(extra)
    return json.dumps(body, ensure_ascii=False, default=repr)


_dumps = json.JSONEncoder(ensure_ascii=False, default=repr).encode
# The C encoder itself, made once (JSONEncoder.encode makes a new one on every call: half
# the cost of a record). An event row holds no container, so no circular-reference check.
_make_c_encoder: Callable[..., Callable[[Any, int], Any]] | None = getattr(
    json_encoder, "c_make_encoder", None
)
_c_encode = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None, repr, json_encoder.encode_basestring, None, ", ", ", ", False, False, True
    )
)


def encode_event_row(row: EventRow) -> str:
    """The record of one event (the hot path: no walk over the row)."""
    job_id, step_id, external_job_id, level, message, attrs, ts, trace_id, span_id = row
    if _c_encode is None:
        head, tail = (
            _dumps([job_id, step_id, external_job_id, level, message, attrs]),
            _dumps([trace_id, span_id]),
        )
    else:
        head = "".join(_c_encode([job_id, step_id, external_job_id, level, message, attrs], 0))
        tail = "".join(_c_encode([trace_id, span_id], 0))
    return (
        '{"op":"InsertEvents","rows":[['
        + head[1:-1]
        + ',{"$dt":"'
        + ts.isoformat()
        + '"},'
        + tail[1:-1]
        + "]]}"
    )


def _event_row(values: Any) -> EventRow:
    """An event row of a record; one written before the OpenTelemetry columns (7 values)
    gets NULL trace and span IDs."""
    if not isinstance(values, list) or len(values) not in (7, len(EVENT_COLUMNS)):
        raise ValueError(f"an event row needs {len(EVENT_COLUMNS)} columns")
    if len(values) == 7:
        values = [*values, None, None]
    return tuple(values)


def _plain_event_row(values: Any) -> EventRow | None:
    """An event row as :func:`encode_event_row` writes it (scalars, and the time as its one
    ``{"$dt": ...}``) without the walk of :func:`_decode`; None for anything else."""
    if type(values) is not list or len(values) != len(EVENT_COLUMNS):
        return None
    ts = values[6]
    if type(ts) is not dict or len(ts) != 1 or sum(type(v) is dict for v in values) != 1:
        return None
    text = ts.get("$dt")
    if type(text) is not str or list in map(type, values):
        return None
    values[6] = datetime.fromisoformat(text)
    return tuple(values)


def decode_line(line: str) -> Op:
    """The op of one record line; ValueError if it is not one."""
    try:
        body = json.loads(line)
        cls = _OPS[body["op"]]
        if cls is InsertEvents:
            rows: list[EventRow] = [_plain_event_row(row) or _event_row(_decode(row))
                                    for row in body["rows"]]  # fmt: skip
            return InsertEvents(rows)
        if cls is UpdateJob:
            return UpdateJob(str(body["job_id"]), _decode(body["values"]))
        if cls is UpdateStep:
            return UpdateStep(int(body["step_id"]), _decode(body["values"]))
        return cls(_decode(body["values"]))  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a journal record ({error})") from error


# -- the journal ------------------------------------------------------------------------------

Position = tuple[int, int]  # (segment number, byte offset)


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read from the journal, to be shipped under ``key`` and committed to ``end``."""

    ops: list[Op]
    events: int
    key: str
    end: Position


class Journal:
    """One process's journal in ``directory`` (locked while open).

    ``append`` buffers; ``sync`` (called every sync interval by the owner) writes the
    buffer out and, with ``fsync``, to the disk. ``read_batch``/``commit`` ship in order.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = SEGMENT_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("journal sizes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self.lock = threading.Lock()  # appends, sync, and the writer's "caught up" check
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = _take_lock(self.directory / "LOCK")
        self.corrupt = 0
        self.problems: list[str] = []
        self.journal_id = self._load_id(self.directory / "id")
        self._cursor_path = self.directory / "cursor.json"
        self._shipped, self._pending = self._load_cursor()
        existing = self._segments()
        # Write into a new segment: every older one is complete, so a line without its
        # newline there was cut by a crash (and is skipped), never one still being written.
        self._write_segment = (existing[-1] if existing else 0) + 1
        if self._shipped[0] > self._write_segment or (
            self._pending is not None and self._pending[0][0] > self._write_segment
        ):
            # A cursor past every segment was not written by us: shipping from there would
            # skip (and delete) what the segments hold. Ship them all; keys refuse repeats.
            self.problems.append("cursor.json points past the last segment, shipping all")
            self._shipped, self._pending = (0, 0), None
        if self._shipped[0] == 0:
            self._shipped = (existing[0] if existing else self._write_segment, 0)
        self._out: IO[bytes] = self._open_segment(self._write_segment)
        self._written = 0  # bytes of the write segment, buffered included
        self.unshipped_bytes = sum(
            self._segment_path(n).stat().st_size for n in existing if n >= self._shipped[0]
        ) - (self._shipped[1] if self._shipped[0] in existing else 0)
        self._dirty = False

    # -- appending (any thread) --------------------------------------------------------

    def append(self, line: str) -> None:
        """Append one record (the caller holds ``lock``)."""
        data = (line + "\n").encode("utf-8", "surrogatepass")
        if self._written >= self._segment_bytes:
            self._roll()
        self._out.write(data)
        self._written += len(data)
        self.unshipped_bytes += len(data)
        self._dirty = True

    def full(self, extra: int = 0) -> bool:
        return self.unshipped_bytes + extra > self.max_bytes

    def sync(self) -> None:
        """Write the buffer out (a SIGKILL keeps it) and fsync (a power loss keeps it)."""
        with self.lock:
            if not self._dirty:
                return
            self._out.flush()
            self._dirty = False
            if not self._fsync:
                return
            # fsync outside the lock, so that callers appending meanwhile do not wait for
            # the disk: a duplicate of the descriptor stays valid if a roll closes the file.
            descriptor = os.dup(self._out.fileno())
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def write_position(self) -> Position:
        return (self._write_segment, self._written)

    def _roll(self) -> None:
        self._out.flush()
        if self._fsync:
            os.fsync(self._out.fileno())
        self._out.close()
        self._write_segment += 1
        self._out = self._open_segment(self._write_segment)
        self._written = 0

    # -- shipping (the writer thread) --------------------------------------------------

    def shipped_position(self) -> Position:
        return self._shipped

    def caught_up(self) -> bool:
        """Nothing appended is left to ship (the caller holds ``lock``)."""
        return self._pending is None and self._shipped >= (self._write_segment, self._written)

    def read_batch(self, max_events: int) -> Batch | None:
        """The next records in order (a batch left pending by a crash first, whole)."""
        with self.lock:
            if self._dirty:
                self._out.flush()
                self._dirty = False
        while True:
            start = self._shipped
            if self._pending is not None:
                end, key = self._pending
                batch = self._read(start, end, max_events=None, key=key)
            elif start >= (self._write_segment, self._written):
                return None
            else:
                batch = self._read(start, None, max_events=max_events, key=None)
            if batch is not None:
                return batch
            if self._shipped == start:
                return None  # only a record still being written is left

    def begin(self, batch: Batch) -> None:
        """Record the batch about to be shipped, so a crash reships it whole, same key."""
        self._pending = (batch.end, batch.key)
        self._save_cursor()

    def commit(self, batch: Batch) -> None:
        """The database stored ``batch``: move past it and drop shipped segments."""
        before = self._shipped
        self._shipped = batch.end
        self._pending = None
        self._save_cursor()
        self._account(before, batch.end)
        for number in self._segments():
            if number < self._shipped[0]:
                self._segment_path(number).unlink(missing_ok=True)

    def _account(self, before: Position, after: Position) -> None:
        gone = 0
        for number in range(before[0], after[0] + 1):
            path = self._segment_path(number)
            size = path.stat().st_size if path.exists() else 0
            if number == self._write_segment:
                size = self._written
            start = before[1] if number == before[0] else 0
            end = after[1] if number == after[0] else size
            gone += max(end - start, 0)
        with self.lock:
            self.unshipped_bytes = max(self.unshipped_bytes - gone, 0)

    def _read(
        self, start: Position, end: Position | None, *, max_events: int | None, key: str | None
    ) -> Batch | None:
        """Records of one segment from ``start``; None (cursor moved past any skipped
        lines) when there is nothing to ship there."""
        segment, offset = start
        ops: list[Op] = []
        rows: list[EventRow] = []
        events = 0
        live = segment == self._write_segment
        stop = end[1] if end is not None and end[0] == segment else None
        position = offset
        at_end = False
        path = self._segment_path(segment)
        with contextlib.suppress(FileNotFoundError), path.open("rb") as source:
            source.seek(offset)
            while max_events is None or events < max_events:
                if stop is not None and position >= stop:
                    break
                raw = source.readline()
                if not raw:
                    at_end = True
                    break
                if not raw.endswith(b"\n"):
                    if live:
                        break  # still being written: read it next time
                    position += len(raw)
                    self._skip(segment, position, "a record cut short (no newline)")
                    at_end = True
                    break
                position += len(raw)
                try:
                    op = decode_line(raw.decode("utf-8", "replace"))
                except (ValueError, UnicodeDecodeError) as error:
                    self._skip(segment, position, str(error))
                    continue
                if isinstance(op, InsertEvents):
                    rows.extend(op.rows)
                    events += len(op.rows)
                    continue
                if rows:
                    ops.append(InsertEvents(rows))
                    rows = []
                ops.append(op)
        if not path.exists():
            at_end = True
        if rows:
            ops.append(InsertEvents(rows))
        if end is not None:
            new_end = end
        elif at_end and not live:
            new_end = (segment + 1, 0)  # read to its end: the next segment follows
        else:
            new_end = (segment, position)
        if not ops:
            if new_end != start or self._pending is not None:
                self.commit(Batch([], 0, "", new_end))
            return None
        return Batch(
            ops, events, key or f"journal:{self.journal_id}:{start[0]}:{start[1]}", new_end
        )

    def _skip(self, segment: int, position: int, why: str) -> None:
        self.corrupt += 1
        if len(self.problems) < 100:
            self.problems.append(
                f"{self._segment_path(segment).name} before byte {position}: {why}"
            )

    # -- files -------------------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"seg-{number:08d}.jsonl"

    def _segments(self) -> list[int]:
        numbers = []
        for path in self.directory.glob("seg-*.jsonl"):
            try:
                numbers.append(int(path.stem[4:]))
            except ValueError:
                continue
        return sorted(numbers)

    def _open_segment(self, number: int) -> IO[bytes]:
        return self._segment_path(number).open("ab", buffering=1 << 20)

    def _load_id(self, path: Path) -> str:
        """The ID in batch keys: a new one when the file is missing or not an ID (a key
        must be printable ASCII and short, whatever was written into the file)."""
        try:
            found = path.read_bytes()[:100].decode("ascii").strip()
        except FileNotFoundError:
            found = None
        except (OSError, UnicodeDecodeError):
            found = ""
        if found is not None and _ID.fullmatch(found):
            return found
        if found is not None:
            self.problems.append("the journal's id file held no ID: a new one was written")
        new = uuid.uuid4().hex
        path.write_text(new)
        return new

    def _load_cursor(self) -> tuple[Position, tuple[Position, str] | None]:
        try:
            body = json.loads(self._cursor_path.read_text())
            shipped = (int(body["segment"]), int(body["offset"]))
            if min(shipped) < 0:
                raise ValueError("a negative position")
            pending = body.get("pending")
            if pending is not None:
                return shipped, (
                    (int(pending["segment"]), int(pending["offset"])),
                    str(pending["key"]),
                )
            return shipped, None
        except FileNotFoundError:
            return (0, 0), None
        except (ValueError, KeyError, TypeError) as error:
            self.corrupt += 1
            self.problems.append(f"cursor.json unreadable, shipping from the start: {error}")
            return (0, 0), None

    def _save_cursor(self) -> None:
        body: dict[str, Any] = {"segment": self._shipped[0], "offset": self._shipped[1]}
        if self._pending is not None:
            (segment, offset), key = self._pending
            body["pending"] = {"segment": segment, "offset": offset, "key": key}
        temporary = self._cursor_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body))
        os.replace(temporary, self._cursor_path)

    def close(self, *, remove_if_empty: bool = False) -> None:
        with self.lock:
            self._out.flush()
            if self._fsync:
                os.fsync(self._out.fileno())
            self._out.close()
            done = self.caught_up()
        if remove_if_empty and done:
            for path in self.directory.iterdir():
                if path.name != "LOCK":
                    path.unlink(missing_ok=True)
        _release_lock(self._lock_file)
        if remove_if_empty and done:
            (self.directory / "LOCK").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()


def _take_lock(path: Path) -> IO[str]:
    handle = path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise JournalLocked(
            f"journal {path.parent} is in use by process {holder}; "
            "give each process its own journal_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _release_lock(handle: IO[str]) -> None:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def journals_under(root: Path) -> Iterator[Path]:
    """Journal directories at ``root`` (itself one, or its subdirectories)."""
    if (root / "id").exists() or any(root.glob("seg-*.jsonl")):
        yield root
        return
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and ((child / "id").exists() or any(child.glob("seg-*.jsonl"))):
                yield child
