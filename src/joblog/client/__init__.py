"""Report jobs to a joblog server over HTTP, with the in-process tracker's API.

::

    client = joblog.client.Client("http://joblog:8080", token)
    client.install_logging()
    steps = ["snapshot", "boot"]
    with client.job("failover", "unified", external_job_id=gui_id, steps=steps) as job:
        with job.step("snapshot"):
            logging.getLogger("app").info("snapshot taken")  # shipped with the job's IDs
        with job.step("boot"):
            job.progress(80)
    client.close()

Job and step changes are synchronous HTTP calls; log events are queued and shipped in
batches by joblog's :class:`~joblog.writer.BatchWriter`, each batch under a key the server
stores once, so the writer's retries after a timeout or a 503 never duplicate an event.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from joblog._durability import Durability, DurabilityName, OverflowPolicy, server_root
from joblog.client.http import EventSink, HttpSession, RemoteError
from joblog.client.remote import RemoteJob, RemoteStep
from joblog.exceptions import JobLogError
from joblog.journal import DEFAULT_MAX_BYTES
from joblog.lifecycle import JobScope, current_frame
from joblog.model import PlannedStep
from joblog.owner import Ids, JobOwner, StepSpec, as_planned
from joblog.stdlib import JobLogHandler, make_event_row
from joblog.writer import BatchWriter

__all__ = ["Client", "RemoteError", "RemoteJob", "RemoteStep"]

#: The client's own HTTP libraries log each request; those records are not the job's.
_OWN_LOGGERS = ("httpx", "httpcore", "joblog.client", "joblog.writer")


class _NotOurTransport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_OWN_LOGGERS)


class Client(JobOwner[RemoteJob]):
    """A joblog server at ``base_url``, written to with a write ``token``.

    ``timeout``: seconds per HTTP call. ``batch_size`` (<= 1000) and ``flush_interval``:
    how log events are batched. ``heartbeat_interval``: seconds between heartbeats of
    running jobs (the server fails a job whose heartbeat lapses). ``transport``: an httpx
    transport for both connections (tests, proxies, custom TLS).

    ``durability``, ``journal_dir``, ``journal_max_bytes``, ``journal_sync_interval`` and
    ``journal_overflow`` as for :class:`~joblog.Tracker`: a full queue spills to a local
    journal instead of dropping, and with ``durability="journal"`` every event is on disk
    before the logging call returns; the next Client on that journal (or ``joblog drain
    --server``) ships what a crash left, each batch once (the server's batch keys).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        heartbeat_interval: float = 10.0,
        max_queue: int = 100_000,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        durability: DurabilityName = "memory",
        journal_dir: str | os.PathLike[str] | None = None,
        journal_max_bytes: int = DEFAULT_MAX_BYTES,
        journal_sync_interval: float = 0.05,
        journal_overflow: OverflowPolicy = "drop",
    ) -> None:
        durable = Durability(
            durability, journal_dir, journal_max_bytes, journal_sync_interval, journal_overflow
        )
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000 (the server's batch limit)")
        self.base_url = base_url
        self.session = HttpSession(
            base_url, token, timeout=timeout, retries=retries, transport=transport
        )
        # The writer thread has its own connection: httpx clients are not shared by threads here.
        self._writer_session = HttpSession(
            base_url, token, timeout=timeout, retries=0, transport=transport
        )
        try:
            self.writer = BatchWriter(
                EventSink(self._writer_session),
                make_event_row,
                batch_size=batch_size,
                flush_interval=flush_interval,
                max_queue=max(max_queue, batch_size),
                on_idle=self._heartbeats,
                idle_every=heartbeat_interval,
                **durable.writer_options(server_root(base_url)),
            )
        except BaseException:  # a journal in use by another process, say
            self.session.close()
            self._writer_session.close()
            raise
        self._running: dict[str, RemoteJob] = {}
        self._lock = threading.Lock()
        self._handler: JobLogHandler | None = None
        self._handler_target: logging.Logger | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<joblog.client.Client {self.base_url}>"

    # -- jobs ------------------------------------------------------------------------------

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
        parent: RemoteJob | str | None = None,
        start: bool = True,
    ) -> RemoteJob:
        """Start a job without a ``with`` block; end it with complete(), fail() or cancel().

        ``parent``: a RemoteJob, or any ID of a job the server knows.
        """
        if self._closed:
            raise JobLogError("this client is closed")
        body: dict[str, Any] = {"job_type": job_type, "operation": operation, "start": start}
        optional = {"external_job_id": external_job_id, "context_id": context_id, "owner": owner}
        body.update({key: value for key, value in optional.items() if value is not None})
        planned = [_planned_json(spec) for spec in steps]
        if planned:
            body["steps"] = planned
        if metadata:
            body["metadata"] = dict(metadata)
        if parent is not None:
            body["parent"] = parent.id if isinstance(parent, RemoteJob) else parent
        answer = self.session.call("POST", "/api/v1/jobs", body)
        job = RemoteJob(self, answer, parent if isinstance(parent, RemoteJob) else None)
        with self._lock:
            self._running[job.id] = job
        if isinstance(parent, RemoteJob):
            parent.add_child(job)
        return job

    def job(self, job_type: str, operation: str, **kwargs: Any) -> JobScope[RemoteJob]:
        """``with client.job(type, operation, external_job_id=..., steps=[...]) as job:``

        Inside the block the job is current: logging calls are shipped with its IDs. An
        exception fails it (and is re-raised); JobCancelled or KeyboardInterrupt cancel it.
        """
        return JobScope(lambda: self.start_job(job_type, operation, **kwargs))

    def _heartbeats(self) -> list[Any]:
        # Runs on the writer thread, so it uses the writer's connection.
        for job in self.running_jobs():
            try:
                job.saw_state(self._writer_session.call("POST", f"{job.path}/heartbeat"))
            except JobLogError:
                continue  # the next heartbeat may get through; the writer keeps going
        return []

    # -- logging -----------------------------------------------------------------------------

    def _new_handler(self, level: int) -> JobLogHandler:
        # Records outside any job, and the client's own HTTP chatter, are not shipped.
        handler = JobLogHandler(
            tracker=self,
            level=level,
            unattributed="drop",
        )
        handler.addFilter(_NotOurTransport())
        return handler

    def _current_ids(self) -> Ids:
        frame = current_frame()
        if frame is None or frame.job.owner is not self:
            raise JobLogError("log_event needs a job of this client to be current")
        return frame.ids

    # -- lifecycle ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every event queued so far is stored; False on timeout."""
        return self.writer.flush(timeout)

    def _release(self) -> None:
        self.session.close()
        self._writer_session.close()


def _planned_json(spec: StepSpec) -> str | dict[str, Any]:
    if isinstance(spec, PlannedStep | tuple):
        planned = as_planned(spec)
        return {"name": planned.name, "weight": planned.weight}
    return str(spec)  # a bare name: the server gives it the plan's default weight
