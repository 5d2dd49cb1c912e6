"""``GET /api/v1/jobs/{any_id}/stream``: a job's changes as Server-Sent Events.

The producer may be another process on any backend. The stream reads the database (job
row, steps, children, events after the last one sent) when the process's change hub
(:mod:`joblog.api.hub`) says the job moved: a PostgreSQL ``NOTIFY`` sent at each commit,
or the hub's one shared watcher query a tick on every backend; an idle stream costs no
query of its own. Legacy failover rows, which the older system changes without notice,
and an app run without its lifespan (no hub) poll every ``poll_interval``. Events, in order:

* ``snapshot``: the summary dict (first event of a fresh connection, never of a resume);
  its ``recent_events`` are the log tail, and ``log`` events continue after them;
* ``progress``: {status, percent, progress, eta_seconds, elapsed_seconds, error_message,
  cancel_requested};
* ``step``: a step dict, whenever a step row is new or changed;
* ``child``: a job dict, whenever a child job is new or changed;
* ``log``: an event dict per new log event, in ID order;
* ``end``: {status, error_message} once the job is terminal; then the stream closes.

Every event's ``id`` is ``<last log event id>.<state token>``, the token a short hash of the
job's status, percent, cancel request, steps and children
(:func:`joblog.api.state.state_token`, which the status routes' ETag extends). A client
reconnecting with ``Last-Event-ID`` gets the log events after that ID, and the state
events only if the token changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from joblog._config import MAX_BIGINT
from joblog.api.errors import InvalidRequest
from joblog.api.hub import ChangeHub, Subscription
from joblog.api.metrics import AppMetrics
from joblog.api.read_routing import reads_from_primary
from joblog.api.schemas import ErrorBody
from joblog.api.serialize import (
    dumps,
    event_to_dict,
    job_to_dict,
    progress_to_dict,
    step_to_dict,
    summary_to_dict,
)
from joblog.api.settings import ApiSettings
from joblog.api.state import legacy_token, state_token
from joblog.exceptions import JobNotFound, StorageError
from joblog.model import Job, JobSummary, LogEvent, ResolvedBy, Step
from joblog.resolve import Located, Resolver
from joblog.storage.notify import Key
from joblog.storage.rows import job_from_row

__all__ = ["SharedPolls", "follow_in_process", "parse_last_event_id", "router"]

# A stream reads when a commit on the primary told it to: a replica may not have it yet.
router = APIRouter(prefix="/api/v1", tags=["stream"], dependencies=[Depends(reads_from_primary)])

_LAST_EVENT_ID = re.compile(r"^(\d{1,19})\.([0-9a-f]{1,32})$", re.ASCII)


def parse_last_event_id(value: str | None) -> tuple[int, str] | None:
    """(last log event id, state token) from a ``Last-Event-ID`` header; 400 if malformed."""
    if value is None or value.strip() == "":
        return None
    match = _LAST_EVENT_ID.match(value.strip())
    if match is None or int(match.group(1)) > MAX_BIGINT:
        raise InvalidRequest(
            ["header", "last-event-id"], "not an ID this stream sent", status_code=400
        )
    return int(match.group(1)), match.group(2)


def _step_key(step: Step) -> str | None:
    """Stored steps by row ID, legacy phases by position; declared-only steps have none."""
    if step.id is not None:
        return str(step.id)
    if step.seq is not None:
        return f"seq:{step.seq}"
    return None


def _job_mark(job: Job) -> tuple[Any, ...]:
    return (
        job.status.value,
        job.percent_complete,
        job.error_message,
        job.completed_at,
        job.cancel_requested,
    )


def _step_mark(step: Step) -> tuple[Any, ...]:
    return (step.status.value, step.started_at, step.completed_at, step.error_message)


@dataclass(slots=True)
class _Poll:
    """One round of reads: the summary when the state changed, and the new log events."""

    token: str | None
    summary: JobSummary | None
    events: list[LogEvent]


class _Source:
    """What one stream follows: a stored job, an events-only ID or a legacy failover row."""

    def __init__(self, resolver: Resolver, located: Located) -> None:
        self.resolver = resolver
        self.located = located
        self.scope = located.scope

    @property
    def key(self) -> Key | None:
        """What the change hub knows this source by; None: not announced (legacy rows)."""
        if self.located.legacy is not None or self.scope.empty:
            return None
        if self.scope.job_id is not None:
            return ("j", self.scope.job_id)
        assert self.scope.external_job_id is not None
        return ("x", self.scope.external_job_id)

    def poll(self, known_token: str | None, after_id: int, limit: int) -> _Poll:
        """Read the state (the full summary only if its token moved) then newer events."""
        token, summary = self._state(known_token)
        return _Poll(token, summary, self._events(after_id, limit))

    def token_of(self, summary: JobSummary) -> str:
        """The state token of the summary this source was opened with."""
        if summary.legacy is not None:
            return legacy_token(summary.legacy)
        if self.located.state is not None:
            return state_token(self.located.state)
        return "0"  # events-only: no state events, ever

    def _state(self, known_token: str | None) -> tuple[str | None, JobSummary | None]:
        located = self.located
        if located.legacy is not None:
            summary = self.resolver.summary(self.resolver.locate(located.legacy.job_id))
            token = self.token_of(summary)
            return token, (summary if token != known_token else None)
        if located.job_id is None or located.tier is ResolvedBy.LOG_EVENTS:
            return None, None
        row = self.resolver.store.reads.job_with_state(located.job_id)
        if row is None:
            return known_token, None
        token = state_token(row)
        if token == known_token:
            return token, None
        return token, self.resolver.summarize(job_from_row(row), located.tier)

    def _events(self, after_id: int, limit: int) -> list[LogEvent]:
        if self.scope.empty:
            return []
        return self.resolver.store.reads.list_events(
            job_id=self.scope.job_id,
            external_job_id=self.scope.external_job_id,
            after_id=after_id,
            limit=limit,
        )


def _frame(event: str, data: Any, event_id: str) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), event_id.encode(), dumps(data))


def _progress_data(summary: JobSummary) -> dict[str, Any]:
    return {
        "status": summary.job.status.value,
        "percent": summary.progress.percent,
        "progress": progress_to_dict(summary.progress),
        "eta_seconds": summary.eta_seconds,
        "elapsed_seconds": summary.elapsed_seconds,
        "error_message": summary.job.error_message,
        "cancel_requested": summary.job.cancel_requested,
    }


@dataclass(slots=True)
class _Cursor:
    """What the client has seen: the log cursor, the state token and each item's mark."""

    log_id: int
    token: str
    progress: tuple[Any, ...] | None = None
    steps: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    children: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def seen(self, summary: JobSummary) -> None:
        self.progress = self._progress_mark(summary)
        for step in summary.steps:
            key = _step_key(step)
            if key is not None:
                self.steps[key] = _step_mark(step)
        self.children = {child.id: _job_mark(child) for child in summary.children}

    @staticmethod
    def _progress_mark(summary: JobSummary) -> tuple[Any, ...]:
        return (*_job_mark(summary.job), summary.progress)

    def state_frames(self, summary: JobSummary, token: str) -> list[bytes]:
        """Progress, step and child events for what changed; only the last carries ``token``."""
        changes: list[tuple[str, dict[str, Any]]] = []
        if self._progress_mark(summary) != self.progress:
            changes.append(("progress", _progress_data(summary)))
        for step in summary.steps:
            key = _step_key(step)
            if key is not None and self.steps.get(key) != _step_mark(step):
                changes.append(("step", step_to_dict(step)))
        for child in summary.children:
            if self.children.get(child.id) != _job_mark(child):
                changes.append(("child", job_to_dict(child)))
        self.seen(summary)
        frames = []
        for index, (name, data) in enumerate(changes):
            # A client cut off mid-batch resumes with the old token and gets the batch again.
            last = index == len(changes) - 1
            frames.append(_frame(name, data, f"{self.log_id}.{token if last else self.token}"))
        self.token = token
        return frames

    def log_frames(self, events: Sequence[LogEvent]) -> list[bytes]:
        frames = []
        for event in events:
            self.log_id = event.id
            frames.append(_frame("log", event_to_dict(event), f"{self.log_id}.{self.token}"))
        return frames

    def end_frame(self, job: Job) -> bytes:
        data = {"status": job.status.value, "error_message": job.error_message}
        return _frame("end", data, f"{self.log_id}.{self.token}")


async def _follow(
    request: Request,
    source: _Source,
    summary: JobSummary,
    resume: tuple[int, str] | None,
    settings: ApiSettings,
) -> AsyncIterator[bytes]:
    yield f"retry: {settings.retry_ms}\n\n".encode()
    if resume is None:
        tail = max((event.id for event in summary.recent_events), default=0)
        cursor = _Cursor(log_id=tail, token=source.token_of(summary))
        cursor.seen(summary)
        yield _frame("snapshot", summary_to_dict(summary), f"{cursor.log_id}.{cursor.token}")
        known: str | None = cursor.token
    else:
        cursor = _Cursor(log_id=resume[0], token=resume[1])
        known = None  # read the full state once, to learn each item's mark
    job = summary.job
    terminal = False
    # After the job is seen terminal, one more round picks up log lines written just after.
    final_round = job.is_terminal and resume is None
    last_sent = time.monotonic()
    shared: SharedPolls = getattr(request.app.state, "stream_polls", None) or SharedPolls()
    not_before = time.monotonic()
    with _subscription(request, source) as subscription:
        while True:
            if await request.is_disconnected():
                return
            try:
                poll = await shared.poll(
                    source, known, cursor.log_id, settings.stream_batch, not_before
                )
            except (StorageError, JobNotFound):
                # The database is away: keep the connection and try again on the next round.
                poll = None
            frames: list[bytes] = []
            if poll is not None:
                if poll.summary is not None:
                    job = poll.summary.job
                    assert poll.token is not None
                    if known is None and poll.token == cursor.token:
                        cursor.seen(poll.summary)  # a resume that missed no state change
                    else:
                        frames += cursor.state_frames(poll.summary, poll.token)
                known = poll.token if poll.token is not None else known
                frames += cursor.log_frames(poll.events)
                terminal = job.is_terminal
            for frame in frames:
                yield frame
            if frames:
                last_sent = time.monotonic()
            more_logs = poll is not None and len(poll.events) >= settings.stream_batch
            if terminal and poll is not None and not more_logs:
                if final_round:
                    yield cursor.end_frame(job)
                    return
                final_round = True
            if time.monotonic() - last_sent >= settings.keepalive_interval:
                yield b": keepalive\n\n"
                last_sent = time.monotonic()
            if more_logs:
                continue
            if subscription is None or poll is None or final_round:
                await anyio.sleep(settings.poll_interval)
                not_before = time.monotonic()
                continue
            # Idle: no query until the hub says the job moved; keepalives meanwhile.
            while True:
                due = settings.keepalive_interval - (time.monotonic() - last_sent)
                if due <= 0:
                    yield b": keepalive\n\n"
                    last_sent = time.monotonic()
                    continue
                if await subscription.wait(min(due, _DISCONNECT_CHECK_S)):
                    not_before = subscription.woken_at
                    break
                if await request.is_disconnected():
                    return


class SharedPolls:
    """One read for the streams that ask the same thing at once (one per process).

    Streams of one job at the same cursor and state token, woken by the same change,
    would each read the same rows: five viewers of a job cost five reads per change. A
    stream joins a read of the same (job, token, cursor) already under way, but only one
    that started after the stream was woken: an earlier one may have missed the change.
    """

    def __init__(self) -> None:
        self._reads: dict[tuple[Any, ...], tuple[float, asyncio.Future[_Poll]]] = {}
        self.reads = 0
        self.joined = 0

    async def poll(
        self, source: _Source, known: str | None, after_id: int, limit: int, not_before: float
    ) -> _Poll:
        key = source.key
        if key is None:  # legacy rows: nothing to share, nothing announced
            return await run_in_threadpool(source.poll, known, after_id, limit)
        slot = (key, known, after_id, limit)
        under_way = self._reads.get(slot)
        if under_way is not None and under_way[0] >= not_before:
            await asyncio.wait({under_way[1]})
            if not under_way[1].cancelled():
                self.joined += 1
                return under_way[1].result()
        started = time.monotonic()
        future: asyncio.Future[_Poll] = asyncio.get_running_loop().create_future()
        self._reads[slot] = (started, future)
        self.reads += 1
        try:
            result = await run_in_threadpool(source.poll, known, after_id, limit)
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: a read nobody joined is not an error to log
            raise
        except BaseException:
            future.cancel()  # the reader went away: those waiting read on their own
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._reads.get(slot, (0.0, None))[1] is future:
                del self._reads[slot]


#: Seconds between two checks for a vanished client while a stream waits on the hub.
_DISCONNECT_CHECK_S = 1.0


@contextlib.contextmanager
def _subscription(request: Request, source: _Source) -> Iterator[Subscription | None]:
    """The stream's hub subscription; None (poll every ``poll_interval``) without a
    running hub, and for legacy rows, which the older system changes without notice.
    Counted in ``joblog_streams_open`` while it lasts."""
    hub: ChangeHub | None = getattr(request.app.state, "hub", None)
    metrics: AppMetrics | None = getattr(request.app.state, "metrics", None)
    key = source.key
    with metrics.streams.track_inprogress() if metrics else contextlib.nullcontext():
        if hub is None or not hub.running or key is None:
            yield None
            return
        with hub.subscribe(key) as subscription:
            yield subscription


@router.get(
    "/jobs/{any_id:path}/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        400: {"model": ErrorBody, "description": "Malformed Last-Event-ID"},
        404: {"model": ErrorBody},
    },
)
async def job_stream(any_id: str, request: Request) -> Response:
    """Follow a job live until it ends; resume with ``Last-Event-ID``."""
    resume = parse_last_event_id(request.headers.get("last-event-id"))
    resolver: Resolver = request.app.state.resolver
    settings: ApiSettings = request.app.state.settings
    located = await run_in_threadpool(resolver.locate, any_id, with_job=True)
    summary = await run_in_threadpool(resolver.summary, located)
    source = _Source(resolver, located)
    return StreamingResponse(
        _follow(request, source, summary, resume, settings),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _InProcess:
    """What :func:`_follow` asks of a request, for a follower in this process: it never
    disconnects and has no change hub, so the stream reads every ``poll_interval``."""

    app = SimpleNamespace(state=SimpleNamespace(hub=None))

    async def is_disconnected(self) -> bool:
        return False


def follow_in_process(
    resolver: Resolver,
    located: Located,
    settings: ApiSettings | None = None,
    resume: tuple[int, str] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The stream of what :meth:`Resolver.locate` found, frame by frame as this route
    sends it, without a server: ``joblog logs --follow`` on a database URL reads it."""
    summary = resolver.summary(located)
    source = _Source(resolver, located)
    request = cast(Request, _InProcess())
    frames = _follow(request, source, summary, resume, settings or ApiSettings())
    return cast(AsyncGenerator[bytes, None], frames)
