"""The background batch writer: a bounded queue, batches by size and time, retries.

The caller's thread only appends to a deque (no lock, no I/O). One daemon thread
drains it in order and applies each batch in a single transaction. A batch that fails
for a transient reason (the database is down, a lock timed out) is kept and retried
with exponential backoff, under the same batch key, so it is stored exactly once. A
batch that fails for a permanent reason (or for any exception at all) is split and
applied op by op. An event row the database still refuses is tried again detached from
its job and step (its ``external_job_id`` kept, so the job is still found by it: the
job row may be the one refused), then with its attrs replaced by a note; whatever still
cannot be stored is appended to the dead-letter file (JSON lines, ``joblog replay``) and
counted as ``failed``. Nothing a batch holds can stop the thread; if it dies anyway,
the next call restarts it, and ``flush`` notices and restarts it too.

Only a full queue loses events: ``put_event`` then waits up to ``full_queue_timeout``
for room and, failing that, drops the event and counts it in ``dropped``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joblog._ops import EventRow, InsertEvents, Op, Sink
from joblog.dead_letter import DeadLetter
from joblog.exceptions import StorageError

__all__ = ["BatchWriter", "WriterStats"]

internal_log = logging.getLogger("joblog.writer")

#: Turns a queued raw event into a row; runs on the writer thread, off the caller's path.
RowMaker = Callable[[Any], EventRow]


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of one writer since it started."""

    queued: int
    written: int
    batches: int
    retries: int
    dropped: int
    failed: int
    dropped_after_close: int
    last_error: str | None
    healthy: bool
    #: Ops that could not be stored and went to the dead-letter file (also in ``failed``).
    dead_lettered: int = 0
    dead_letter_path: str | None = None
    #: Times the writer thread died and was started again.
    restarts: int = 0


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Op:
    """A queued state change; wakes the writer at once (jobs and steps are rare and urgent)."""

    __slots__ = ("op",)

    def __init__(self, op: Op) -> None:
        self.op = op


class BatchWriter:
    def __init__(
        self,
        sink: Sink,
        make_row: RowMaker,
        *,
        batch_size: int = 2000,
        max_batch: int = 50_000,
        flush_interval: float = 0.2,
        max_queue: int = 200_000,
        full_queue_timeout: float = 0.1,
        max_backoff: float = 5.0,
        on_idle: Callable[[], list[Op]] | None = None,
        idle_every: float = 5.0,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        if not 1 <= batch_size <= max_batch or max_queue < batch_size or flush_interval <= 0:
            raise ValueError(
                "need 1 <= batch_size <= max_batch, batch_size <= max_queue, flush_interval > 0"
            )
        self._sink = sink
        self._make_row = make_row
        self._batch_size = batch_size
        self._max_batch = max_batch
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._full_queue_timeout = full_queue_timeout
        self._max_backoff = max_backoff
        self._on_idle = on_idle
        self._idle_every = idle_every
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._closed = False
        # itertools.count is advanced atomically under the GIL; += on an int is not.
        self._dropped = itertools.count()
        self._dropped_after_close = itertools.count()
        self._written = 0
        self._batches = 0
        self._retries = 0
        self._failed = 0
        self._last_error: str | None = None
        self._healthy = True
        self._dead_letter = dead_letter
        self._dead_lettered = 0
        self._restarts = 0
        self._busy = False  # a batch taken off the queue is being written
        self._dead = False  # set by a thread that exits before close(): restart it
        self._start_lock = threading.Lock()
        self._thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="joblog-writer", daemon=True)
        thread.start()
        self.thread_id = thread.ident
        return thread

    def _revive(self) -> None:
        """Start a new writer thread if the last one died (never while closing)."""
        with self._start_lock:
            if self._closed or self._thread.is_alive():
                return
            self._restarts += 1
            self._dead = False
            self._thread = self._new_thread()

    # -- the caller's side -------------------------------------------------------------

    def put_event(self, item: Any) -> None:
        """Queue one raw event; never raises, waits at most ``full_queue_timeout``."""
        if self._dead:
            self._revive()
        queue = self._queue
        if len(queue) >= self._max_queue and not self._wait_for_room():
            return
        if self._closed:
            next(self._dropped_after_close)
            return
        queue.append(item)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def put_op(self, op: Op) -> None:
        """Queue a job or step change, in order with the events around it."""
        if self._closed:
            next(self._dropped_after_close)
            return
        if self._dead:
            self._revive()
        self._queue.append(_Op(op))
        self._wake.set()

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self._full_queue_timeout
        self._wake.set()
        while len(self._queue) >= self._max_queue:
            if self._closed or time.monotonic() >= deadline:
                next(self._dropped)
                return False
            time.sleep(0.001)
        return True

    def pending(self) -> bool:
        """True while something queued is not stored yet."""
        return bool(self._queue) or self._busy

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is stored; False on timeout.

        A writer thread that died is started again; after close() nothing is waited for.
        """
        if self._closed and not self._thread.is_alive():
            return not self._queue
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if marker.done.wait(max(left, 0.0)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if not self._thread.is_alive():
                if self._closed:
                    return marker.done.is_set()
                self._revive()

    def close(self, timeout: float | None = 30.0) -> bool:
        """Stop accepting events, drain the queue, stop the thread; False if it timed out."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> WriterStats:
        return WriterStats(
            queued=sum(1 for item in tuple(self._queue) if not isinstance(item, _Flush)),
            written=self._written,
            batches=self._batches,
            retries=self._retries,
            dropped=_peek(self._dropped),
            failed=self._failed,
            dropped_after_close=_peek(self._dropped_after_close),
            last_error=self._last_error,
            healthy=(self._healthy and not self._dead and self._thread.is_alive())
            or (self._closed and self._healthy),
            dead_lettered=self._dead_lettered,
            dead_letter_path=None if self._dead_letter is None else str(self._dead_letter.path),
            restarts=self._restarts,
        )

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if not self._closed:
                self._dead = True
                self._healthy = False

    def _loop(self) -> None:
        last_idle = time.monotonic()
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self._drain()
                if self._on_idle is not None and time.monotonic() - last_idle >= self._idle_every:
                    last_idle = time.monotonic()
                    ops = self._on_idle()
                    if ops:
                        self._write(ops, 0)
            except Exception as error:  # a bug must cost one batch at most, not the thread
                self._healthy = False
                self._report(f"writer error, continuing: {error!r}")
                self._busy = False
                time.sleep(0.05)
            if self._closed and not self._queue:
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            self._busy = True
            ops: list[Op] = []
            rows: list[EventRow] = []
            markers: list[_Flush] = []
            events = 0
            # Take what is there, up to max_batch: a backlog goes out in big transactions
            # (fewer round trips, each of which costs the GIL back from busy callers), a
            # trickle in small ones, at once.
            while queue and events < self._max_batch:
                item = queue.popleft()
                if isinstance(item, _Flush):
                    markers.append(item)
                    # Everything before the marker must be stored before it is released.
                    break
                if isinstance(item, _Op):
                    if rows:
                        ops.append(InsertEvents(rows))
                        rows = []
                    ops.append(item.op)
                    continue
                try:
                    rows.append(self._make_row(item))
                except Exception as error:  # a row maker that fails (joblog's never does)
                    self._failed += 1
                    self._report(f"could not render a log record: {error!r}")
                    continue
                events += 1
            if rows:
                ops.append(InsertEvents(rows))
            try:
                if ops:
                    self._write(ops, events)
            finally:
                self._busy = False
                for marker in markers:
                    marker.done.set()

    def _write(self, ops: list[Op], events: int) -> None:
        batch_key = uuid.uuid4().hex
        delay = 0.05
        while True:
            try:
                self._sink.apply_batch(ops, batch_key)
            except Exception as error:
                self._last_error = f"{type(error).__name__}: {error}"
                if not isinstance(error, StorageError) or not error.transient:
                    self._write_one_by_one(ops)
                    return
                self._healthy = False
                self._retries += 1
                # While closing, keep trying: close() drains, and its timeout bounds the wait.
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            self._healthy = True
            self._written += events
            self._batches += 1
            return

    def _write_one_by_one(self, ops: list[Op]) -> None:
        """Isolate the ops a permanent error is about; store every other one."""
        for op in _split(ops):
            error = self._try(op)
            if error is None:
                if isinstance(op, InsertEvents):
                    self._written += len(op.rows)
                continue
            if isinstance(op, InsertEvents):
                stored = self._store_row_anyway(op.rows[0])
                if stored:
                    self._written += 1
                    continue
            self._failed += len(op.rows) if isinstance(op, InsertEvents) else 1
            self._bury(op, error)
        self._batches += 1

    def _try(self, op: Op) -> BaseException | None:
        try:
            self._sink.apply_batch([op], uuid.uuid4().hex)
        except Exception as error:
            return error
        return None

    def _store_row_anyway(self, row: EventRow) -> bool:
        """A refused event row, detached from its job and step (which may be the rows
        refused), then with its attrs replaced by a note: the line is kept if at all
        possible, and still found by its external ID."""
        job_id, step_id, external_job_id, level, message, attrs, ts = row
        tries: list[EventRow] = []
        if job_id is not None or step_id is not None:
            tries.append((None, None, external_job_id, level, message, attrs, ts))
        if attrs is not None:
            note = '{"joblog_error": "attrs refused by the database"}'
            tries.append((None, None, external_job_id, level, message, note, ts))
        return any(self._try(InsertEvents([attempt])) is None for attempt in tries)

    def _bury(self, op: Op, error: BaseException) -> None:
        message = f"could not store {type(op).__name__}: {error}"
        if self._dead_letter is not None:
            try:
                self._dead_letter.append(op, str(error))
                self._dead_lettered += 1
                message += f" (kept in {self._dead_letter.path})"
            except Exception as failure:
                message += f" (and the dead-letter file failed: {failure!r})"
        self._report(message)

    def _report(self, message: str) -> None:
        self._last_error = message
        # The handler ignores records from this thread, so this cannot loop back.
        internal_log.error(message)
        if not logging.getLogger().handlers:
            print(f"joblog: {message}", file=sys.stderr)


def _split(ops: list[Op]) -> list[Op]:
    single: list[Op] = []
    for op in ops:
        if isinstance(op, InsertEvents):
            single.extend(InsertEvents([row]) for row in op.rows)
        else:
            single.append(op)
    return single


def _peek(counter: itertools.count[int]) -> int:
    # repr is "count(N)": read the value without advancing it.
    return int(repr(counter)[6:-1])
