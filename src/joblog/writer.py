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

Memory is bounded, and a full queue drops nothing: events (and job/step changes) then
spill to a local journal (:mod:`joblog.journal`, append-only segment files) and are
shipped, in order, after what memory holds. Only past the journal's own size bound is
anything dropped (``overflow="drop"``, counted in ``dropped``) or the caller made to wait
(``overflow="block"``). With ``journal_all`` (``durability="journal"``) every event goes
to the journal before the call returns, and the writer ships from there; the journal's
buffer is written out and fsynced every ``sync_interval`` seconds by its own thread.
Without a journal, a full queue waits up to ``full_queue_timeout`` and then drops.
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

from joblog._ops import EventRow, InsertEvents, Op, Sink, one_by_one
from joblog.dead_letter import DeadLetter
from joblog.exceptions import StorageError
from joblog.journal import Journal, encode_event_row, encode_op

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
    #: Events written to the journal (memory full, or ``durability="journal"``).
    spilled: int = 0
    #: Events shipped from the journal to the database (earlier processes' included).
    shipped: int = 0
    journal_path: str | None = None
    journal_bytes: int = 0
    #: Journal records skipped because they were cut short or did not parse.
    journal_corrupt: int = 0


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
        journal: Callable[[], Journal] | None = None,
        journal_all: bool = False,
        overflow: str = "drop",
        sync_interval: float = 0.05,
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
        if overflow not in ("drop", "block"):
            raise ValueError("overflow must be 'drop' or 'block'")
        if sync_interval <= 0:
            raise ValueError("sync_interval must be > 0")
        self._open_journal = journal
        self._journal: Journal | None = None
        self._journal_all = journal_all
        self._overflow = overflow
        self._sync_interval = sync_interval
        self._spilled = itertools.count()
        self._shipped = 0
        self._unwoken = 0
        # True while new items must go to the journal (it holds items older than them).
        self._spilling = journal_all
        if journal_all:
            self._journal_now()  # a locked journal is an error at once, not at first call
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
        if self._spilling and self._spill(item):
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            if self._closed:
                next(self._dropped_after_close)
                return
            if self._journal_now() is not None:
                self._spilling = True
                if self._spill(item):
                    return
            if not self._wait_for_room():
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
        if self._spilling and self._spill(_Op(op)):
            self._wake.set()
            return
        self._queue.append(_Op(op))
        self._wake.set()

    # -- the journal -------------------------------------------------------------------

    def _journal_now(self) -> Journal | None:
        """The journal, opened on first use (None when there is none or it failed)."""
        if self._journal is not None or self._open_journal is None:
            return self._journal
        with self._start_lock:
            if self._journal is None:
                try:
                    journal = self._open_journal()
                except Exception as error:
                    if self._journal_all:
                        raise
                    self._open_journal = None  # do not retry on every call
                    self._report(f"could not open the journal, memory only: {error!r}")
                    return None
                threading.Thread(
                    target=self._sync_loop, args=(journal,), name="joblog-journal", daemon=True
                ).start()
                self._journal = journal
        return self._journal

    def _sync_loop(self, journal: Journal) -> None:
        # At a fixed rate (not a sleep after each sync): a slow fsync must not stretch the
        # interval that a SIGKILL can lose.
        next_sync = time.monotonic()
        while not (self._closed and not self._thread.is_alive()):
            next_sync += self._sync_interval
            time.sleep(max(next_sync - time.monotonic(), 0.0))
            next_sync = max(next_sync, time.monotonic() - self._sync_interval)
            try:
                journal.sync()
            except Exception as error:  # a full disk must not stop the syncs that follow
                self._report(f"journal sync failed: {error!r}")

    def _spill(self, item: Any) -> bool:
        """Append to the journal; False when the caller should use memory instead."""
        journal = self._journal_now()
        if journal is None:
            self._spilling = False
            return False
        if self._closed and not self._journal_all:
            next(self._dropped_after_close)
            return True
        try:
            if isinstance(item, _Op):
                line = encode_op(item.op)
            else:
                line = encode_event_row(self._make_row(item))
        except Exception as error:  # joblog's row maker never raises
            self._failed += 1
            self._report(f"could not render a log record: {error!r}")
            return True
        size = len(line) + 1
        while True:
            with journal.lock:
                if not self._spilling:
                    return False  # the writer caught up meanwhile: memory again
                if not journal.full(size):
                    try:
                        journal.append(line)
                    except OSError as error:
                        self._report(f"journal append failed, memory instead: {error!r}")
                        return False
                    break
            if self._overflow == "drop" or self._closed:
                next(self._dropped)
                return True
            self._wake.set()
            time.sleep(0.001)
        next(self._spilled)
        self._unwoken += 1
        if self._unwoken >= self._batch_size:
            self._unwoken = 0
            self._wake.set()
        return True

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
        journal = self._journal
        target = None
        if journal is not None:
            with journal.lock:
                target = journal.write_position()
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if journal is not None and target is not None and marker.done.is_set():
                if journal.shipped_position() >= target:
                    return True
                self._wake.set()
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.005)
            elif marker.done.wait(max(left, 0.0)):
                if journal is None or target is None:
                    return True
                continue
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
        finished = not self._thread.is_alive()
        journal = self._journal
        if journal is not None:
            try:
                if finished:
                    # A spill journal that was shipped whole leaves nothing behind.
                    journal.close(remove_if_empty=not self._journal_all)
                else:
                    journal.sync()  # left for the next Tracker or `joblog drain`
            except Exception as error:
                self._report(f"could not close the journal: {error!r}")
        return finished

    def stats(self) -> WriterStats:
        """``queued`` counts memory and this process's journal records not shipped yet."""
        journal = self._journal
        spilled = _peek(self._spilled)
        in_journal = max(spilled - self._shipped, 0) if journal is not None else 0
        return WriterStats(
            queued=sum(1 for item in tuple(self._queue) if not isinstance(item, _Flush))
            + in_journal,
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
            spilled=spilled,
            shipped=self._shipped,
            journal_path=None if journal is None else str(journal.directory),
            journal_bytes=0 if journal is None else journal.unshipped_bytes,
            journal_corrupt=0 if journal is None else journal.corrupt,
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
            if self._closed and not self._queue and not self._journal_left():
                return

    def _journal_left(self) -> bool:
        journal = self._journal
        if journal is None:
            return False
        with journal.lock:
            return not journal.caught_up()

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
            make_row, append, popleft = self._make_row, rows.append, queue.popleft
            while queue and events < self._max_batch:
                item = popleft()
                kind = type(item)
                if kind is not _Flush and kind is not _Op:  # an event, the common case
                    try:
                        append(make_row(item))
                    except Exception as error:  # a row maker that fails (joblog's never does)
                        self._failed += 1
                        self._report(f"could not render a log record: {error!r}")
                        continue
                    events += 1
                    continue
                if kind is _Flush:
                    markers.append(item)
                    # Everything before the marker must be stored before it is released.
                    break
                if rows:
                    ops.append(InsertEvents(rows))
                    rows = []
                    append = rows.append
                ops.append(item.op)
            if rows:
                ops.append(InsertEvents(rows))
            try:
                if ops:
                    self._write(ops, events)
            finally:
                self._busy = False
                for marker in markers:
                    marker.done.set()
        self._drain_journal()

    def _drain_journal(self) -> None:
        """Ship what the journal holds, in order, each batch under its journal key."""
        journal = self._journal
        if journal is None:
            return
        while True:
            batch = journal.read_batch(self._max_batch)
            if batch is None:
                break
            self._busy = True
            try:
                journal.begin(batch)
                self._write(batch.ops, batch.events, batch.key)
                journal.commit(batch)
                self._shipped += batch.events
            finally:
                self._busy = False
            if journal.problems:
                for problem in journal.problems:
                    self._report(f"journal record skipped: {problem}")
                journal.problems.clear()
            if self._queue and not self._spilling:
                return  # (never while spilling: memory then holds only newer flush markers)
        if journal.problems:
            for problem in journal.problems:
                self._report(f"journal record skipped: {problem}")
            journal.problems.clear()
        if self._spilling and not self._journal_all:
            with journal.lock:
                if journal.caught_up():
                    self._spilling = False

    def _write(self, ops: list[Op], events: int, key: str | None = None) -> None:
        batch_key = key or uuid.uuid4().hex
        delay = 0.05
        while True:
            try:
                self._sink.apply_batch(ops, batch_key)
            except Exception as error:
                self._last_error = f"{type(error).__name__}: {error}"
                if not isinstance(error, StorageError) or not error.transient:
                    self._write_one_by_one(ops, batch_key)
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

    def _write_one_by_one(self, ops: list[Op], batch_key: str) -> None:
        """Isolate the ops a permanent error is about; store every other one (each under
        a key derived from the batch's, so a journal batch shipped again stays once)."""
        for number, op in enumerate(one_by_one(ops)):
            error = self._try(op, f"{batch_key}:{number}")
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

    def _try(self, op: Op, key: str | None = None) -> BaseException | None:
        try:
            self._sink.apply_batch([op], key or uuid.uuid4().hex)
        except Exception as error:
            return error
        return None

    def _store_row_anyway(self, row: EventRow) -> bool:
        """A refused event row, detached from its job and step (which may be the rows
        refused), then with its attrs replaced by a note: the line is kept if at all
        possible, and still found by its external ID."""
        job_id, step_id, external_job_id, level, message, attrs, ts, trace_id, span_id = row
        tries: list[EventRow] = []
        if job_id is not None or step_id is not None:
            tries.append(
                (None, None, external_job_id, level, message, attrs, ts, trace_id, span_id)
            )
        if attrs is not None:
            note = '{"joblog_error": "attrs refused by the database"}'
            tries.append((None, None, external_job_id, level, message, note, ts, None, None))
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


def _peek(counter: itertools.count[int]) -> int:
    # repr is "count(N)": read the value without advancing it.
    return int(repr(counter)[6:-1])
