"""The Tracker: starts jobs, owns the batch writer, installs the logging handler."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from joblog import _shared, rules
from joblog._config import DEFAULT_URL
from joblog._durability import Durability, DurabilityName, OverflowPolicy, database_root
from joblog._ids import utcnow
from joblog._ops import InsertJob, Op, Sink, UpdateJob
from joblog._otel import current_span_ids
from joblog._storable import clean_text
from joblog.dead_letter import DeadLetter, default_path
from joblog.exceptions import (
    ConfigError,
    Conflict,
    ExternalIdInUse,
    JobLogError,
    StorageError,
    StorageUnavailable,
)
from joblog.handles import JobHandle
from joblog.journal import DEFAULT_MAX_BYTES
from joblog.lifecycle import JobScope, current_frame
from joblog.model import Job, JobSummary, Level, PlannedStep
from joblog.owner import STDLIB_LEVELS, Ids, JobOwner, StepSpec, as_planned
from joblog.resolve import Resolver
from joblog.stdlib import JobLogHandler, make_event_row
from joblog.storage.queries import JobFilter
from joblog.storage.store import Store
from joblog.writer import BatchWriter
from joblog.writer_process import ProcessSink

__all__ = ["ExternalIdPolicy", "Tracker"]

ExternalIdPolicy = Literal["reject", "allow"]
MAX_ID_LENGTH = 255


class Tracker(JobOwner[JobHandle]):
    """Tracks jobs in the database at ``url`` and stores log events from inside them.

    ``external_id_policy``: "reject" refuses to start a job whose external ID a running
    job holds; "allow" lets it (resolution then returns the newest).
    Writer settings: ``batch_size`` (events that wake the writer at once), ``max_batch``
    (events a transaction may take from a backlog), ``flush_interval`` (s), ``max_queue``,
    ``full_queue_timeout`` (s a logging call may wait on a full queue before the event
    is dropped and counted), ``heartbeat_interval`` (s).
    Durability (:mod:`joblog._durability`): ``durability`` ("memory": a full queue spills
    to a local journal; "journal": every event is on disk before the call returns),
    ``journal_dir``, ``journal_max_bytes``, ``journal_sync_interval`` (s) and
    ``journal_overflow`` ("drop" or "block" past the journal's size bound).
    ``writer="process"`` runs the database driver's work in a child process
    (:mod:`joblog.writer_process`): the caller's process keeps the queue, the batches and
    the journal, and ships ready rows to it.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        external_id_policy: ExternalIdPolicy = "reject",
        batch_size: int = 2000,
        max_batch: int = 50_000,
        flush_interval: float = 0.2,
        max_queue: int = 200_000,
        full_queue_timeout: float = 0.1,
        heartbeat_interval: float = 10.0,
        unattributed: Literal["keep", "drop"] = "keep",
        unattributed_level: int = logging.DEBUG,
        auto_migrate: bool = True,
        store: Store | None = None,
        dead_letter_path: str | None = None,
        exit_flush_timeout: float = 5.0,
        read_flush_timeout: float = 2.0,
        durability: DurabilityName = "memory",
        journal_dir: str | os.PathLike[str] | None = None,
        journal_max_bytes: int = DEFAULT_MAX_BYTES,
        journal_sync_interval: float = 0.05,
        journal_overflow: OverflowPolicy = "drop",
        writer: Literal["thread", "process"] = "thread",
    ) -> None:
        if external_id_policy not in ("reject", "allow"):
            raise ConfigError("external_id_policy must be 'reject' or 'allow'")
        durable = Durability(
            durability, journal_dir, journal_max_bytes, journal_sync_interval, journal_overflow
        )
        self.store = store if store is not None else Store(url, auto_migrate=auto_migrate)
        self.external_id_policy = external_id_policy
        self._unattributed = unattributed
        self._unattributed_level = unattributed_level
        self._running: dict[str, JobHandle] = {}
        self._lock = threading.Lock()
        self._handler: JobLogHandler | None = None
        self._handler_target: logging.Logger | None = None
        self._closed = False
        if writer not in ("thread", "process"):
            raise ConfigError("writer must be 'thread' or 'process'")
        sink: Sink = self.store
        self._process_sink: ProcessSink | None = None
        if writer == "process":
            self._process_sink = sink = ProcessSink(
                self.store.url.render_as_string(hide_password=False),
                private_memory=self.store.backend.is_private_memory(self.store.url),
            )
        self.writer = BatchWriter(
            sink,
            make_event_row,
            batch_size=batch_size,
            max_batch=max_batch,
            flush_interval=flush_interval,
            max_queue=max_queue,
            full_queue_timeout=full_queue_timeout,
            on_idle=self._heartbeats,
            idle_every=heartbeat_interval,
            dead_letter=DeadLetter(dead_letter_path or default_path(self.store.local_file)),
            **durable.writer_options(database_root(self.store)),
        )
        self.resolver = Resolver(self.store)
        self._read_flush_timeout = read_flush_timeout
        self._flush_at_exit(exit_flush_timeout)

    @classmethod
    def shared(cls, url: str = DEFAULT_URL, **options: Any) -> Tracker:
        """This process's Tracker for ``url``, the one a :class:`~joblog.JobLogHandler`
        built from the same URL (e.g. by ``logging.config.dictConfig``) stores through.

        Made with ``options`` on the first call; later calls pass none or the same ones
        (:class:`ConfigError` otherwise). Closing it is allowed: the next call makes a new
        one. It flushes at interpreter exit like any tracker, and a forked child gets its own.
        """
        return _shared.shared_tracker(url, options)

    # -- logging -----------------------------------------------------------------------------

    def _new_handler(self, level: int) -> JobLogHandler:
        return JobLogHandler(
            tracker=self,
            level=level,
            unattributed=self._unattributed,
            unattributed_level=self._unattributed_level,
        )

    def _current_ids(self) -> Ids:
        frame = current_frame()
        return frame.ids if frame is not None and frame.job.owner is self else (None, None, None)

    def store_structlog_event(self, method_name: str, event_dict: dict[str, Any]) -> None:
        """Store a structlog event dict (used by :func:`joblog.structlog_processor`)."""
        if current_frame() is None and self._unattributed == "drop":
            return
        ids = self._current_ids()
        message = str(event_dict.pop("event", ""))
        for key in ("job_id", "step_id", "external_job_id"):
            event_dict.pop(key, None)
        try:
            levelno = STDLIB_LEVELS[Level.parse(method_name)]
        except ValueError:
            levelno = logging.INFO  # structlog's msg(), log(), ...
        record = logging.makeLogRecord(
            {
                "name": str(event_dict.pop("logger", "structlog")),
                "levelno": levelno,
                "msg": message,
                **{k: v for k, v in event_dict.items() if k not in ("msg", "args")},
            }
        )
        self.writer.put_event((ids, message, record, current_span_ids()))

    # -- jobs ----------------------------------------------------------------------------------

    def start_job(
        self,
        job_type: str,
        operation: str,
        *,
        external_job_id: str | None = None,
        context_id: str | None = None,
        owner: str | None = None,
        steps: Iterable[StepSpec] = (),
        metadata: Mapping[str, Any] | None = None,
        parent: JobHandle | None = None,
    ) -> JobHandle:
        """Start a job without a ``with`` block; end it with complete(), fail() or cancel()."""
        if self._closed:
            raise JobLogError("this tracker is closed")
        _check_text("job_type", job_type, 50)
        _check_text("operation", operation, 100)
        for name, value in (("external_job_id", external_job_id), ("context_id", context_id)):
            if value is not None:
                _check_text(name, value, MAX_ID_LENGTH)
        if owner is not None:
            _check_text("owner", owner, 255)
        planned = [_planned(spec) for spec in steps]
        exclusive = external_job_id is not None and self.external_id_policy == "reject"
        if exclusive:
            self._check_external_id_free(str(external_job_id))
        job = JobHandle(
            self,
            str(uuid.uuid4()),
            job_type,
            operation,
            external_job_id,
            planned,
            parent,
        )
        insert = InsertJob(
            rules.new_job_row(
                job.id,
                job_type,
                operation,
                now=utcnow(),
                external_job_id=external_job_id,
                context_id=context_id,
                owner=owner,
                parent_job_id=parent.id if parent is not None else None,
                planned=planned,
                metadata=metadata,
                exclusive=exclusive,
            )
        )
        # An exclusive job is registered once its row won (or was queued in an outage),
        # so that a refusal always names the job that really holds the ID.
        claimed = exclusive and self._claim(insert, str(external_job_id))
        with self._lock:
            self._running[job.id] = job
        if not claimed:
            self.writer.put_op(insert)
        if parent is not None:
            parent.add_child(job)
        return job

    def job(self, job_type: str, operation: str, **kwargs: Any) -> JobScope[JobHandle]:
        """``with tracker.job(type, operation, external_job_id=..., steps=[...]) as job:``

        The job is current inside the block: logging calls there are stored with its IDs.
        An exception fails it (and is re-raised); :class:`JobCancelled`, KeyboardInterrupt
        or task cancellation cancel it.
        """
        return JobScope(lambda: self.start_job(job_type, operation, **kwargs))

    def _check_external_id_free(self, external_job_id: str) -> None:
        with self._lock:
            for job in self._running.values():
                if job.external_job_id == external_job_id:
                    raise ExternalIdInUse(external_job_id, job.id)
        self._see_own_writes()
        try:
            holder = self.store.reads.running_job_with_external_id(external_job_id)
        except StorageUnavailable:
            return  # cannot ask now; the in-process check above still holds
        if holder is not None:
            raise ExternalIdInUse(external_job_id, holder)

    def _claim(self, insert: InsertJob, external_job_id: str) -> bool:
        """Insert an exclusive job's row now, so the database's unique index (not an
        earlier SELECT) picks the one winner among concurrent starts in any number of
        processes; ExternalIdInUse for the others. False when the row could not be
        stored now (an outage, a value the database refuses): it is then queued like any
        other, the writer's isolation keeps its events, and the in-process check holds."""
        try:
            self.store.apply_batch([insert])
        except Conflict:
            try:
                holder = self.store.reads.running_job_with_external_id(external_job_id)
            except StorageError:
                holder = None
            raise ExternalIdInUse(external_job_id, holder or "") from None
        except StorageError:
            return False
        return True

    def _heartbeats(self) -> list[Op]:
        now = utcnow()
        return [UpdateJob(job.id, {"heartbeat_at": now}) for job in self.running_jobs()]

    # -- reading -----------------------------------------------------------------------------

    def resolve(self, any_id: str) -> JobSummary:
        """Find a job by internal UUID, external ID, context ID, log events or legacy
        failover ID. This process's own queued changes are seen (read-your-writes)."""
        self._see_own_writes()
        return self.resolver.resolve(any_id)

    def _see_own_writes(self) -> None:
        """Store what this process queued before reading it back (bounded: during an
        outage the read goes on and sees what the database has)."""
        if self.writer.pending():
            self.writer.flush(self._read_flush_timeout)

    def recent_jobs(
        self,
        *,
        context_id: str | None = None,
        job_type: str | None = None,
        status: Iterable[str] = (),
        limit: int = 20,
    ) -> list[Job]:
        """Jobs newest first, optionally for one context (e.g. a VM)."""
        self._see_own_writes()
        return self.store.reads.list_jobs(
            JobFilter(status=tuple(status), job_type=job_type, context_id=context_id), limit=limit
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event and change queued so far is stored; False on timeout."""
        return self.writer.flush(timeout)

    def _release(self) -> None:
        if self._process_sink is not None:
            self._process_sink.close()
        self.store.close()


def _check_text(name: str, value: str, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ConfigError(f"{name} must be a non-empty string of at most {limit} characters")
    if clean_text(value) != value:
        raise ConfigError(f"{name} must not contain NUL or lone surrogates: {value!r}")


def _planned(spec: StepSpec) -> PlannedStep:
    planned = as_planned(spec)
    _check_text("step name", planned.name, 255)
    if not planned.weight > 0:
        raise ConfigError(f"step {planned.name!r} needs a positive weight")
    return planned
