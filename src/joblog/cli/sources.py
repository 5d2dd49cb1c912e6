"""Where ``joblog logs`` reads a job: the database, or a joblog server.

Both give the same three things, in the API's shapes: the job's summary (the body of
``GET /api/v1/jobs/{any_id}``), the newest events matching a filter below an event ID
(``/logs`` with ``before_id``), and the job's live stream as Server-Sent Events (the
``/stream`` route). On a database the stream is :func:`joblog.api.stream.follow_in_process`:
the route's own loop and change detection, run in this process, so both paths print
the same events from the same frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import click

from joblog._config import MAX_BIGINT
from joblog.api.serialize import event_from_dict, iso, summary_to_dict
from joblog.cli.common import Target, escaped, fail_cleanly, read_store
from joblog.cli.server import ServerApi, job_path
from joblog.cli.sse import SseEvent, SseParser
from joblog.exceptions import JobLogError
from joblog.model import Level, LogEvent
from joblog.resolve import Resolver, is_resolvable
from joblog.storage.queries import EventFilter

__all__ = ["DatabaseSource", "JobSource", "ServerSource", "open_source"]

#: The API's largest page of events.
_PAGE = 1000

Handler = Callable[[SseEvent], "int | None"]


class JobSource(Protocol):
    def summary(self) -> dict[str, Any]: ...

    def newest_events(
        self, filters: EventFilter, before_id: int | None, limit: int
    ) -> list[LogEvent]: ...

    def follow(self, handle: Handler) -> int: ...

    def close(self) -> None: ...


def open_source(target: Target, any_id: str) -> JobSource:
    """The job ``any_id`` names, on the database or through the server of ``target``."""
    if not is_resolvable(any_id):
        # No tier can hold it (a NUL, a lone surrogate, > 255 characters): say so
        # without asking anyone, as the resolver itself would.
        raise click.ClickException(f"no job is known by the ID '{escaped(any_id)}'")
    if target.server is not None:
        return ServerSource(target, any_id)
    return DatabaseSource(target.url, any_id)


class DatabaseSource:
    """The job on a database, located once by :meth:`Resolver.locate` (every tier)."""

    def __init__(self, url: str, any_id: str) -> None:
        self.store = read_store(url)
        self.resolver = Resolver(self.store)
        try:
            self.located = self.resolver.locate(any_id, with_job=True)
        except JobLogError as error:
            self.store.close()
            raise fail_cleanly(error) from error

    def summary(self) -> dict[str, Any]:
        with _clean_errors():
            return summary_to_dict(self.resolver.summary(self.located))

    def newest_events(
        self, filters: EventFilter, before_id: int | None, limit: int
    ) -> list[LogEvent]:
        scope = self.located.scope
        if scope.empty or limit <= 0:
            return []
        with _clean_errors():
            return self.store.reads.list_events(
                job_id=scope.job_id,
                external_job_id=scope.external_job_id,
                filters=filters,
                before_id=before_id,
                newest_first=True,
                limit=limit,
            )

    def follow(self, handle: Handler) -> int:
        try:
            import anyio

            from joblog.api.stream import follow_in_process
        except ModuleNotFoundError as error:
            raise click.ClickException(
                "following a job on a database URL runs the server's stream in process and"
                " needs the server extra: pip install 'joblog[server]' (or follow through"
                f" a server with --server; {error.name} is not installed)"
            ) from error

        async def read() -> int:
            parser = SseParser()
            frames = follow_in_process(self.resolver, self.located)
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    for event in parser.feed(frame):
                        code = handle(event)
                        if code is not None:
                            return code
            raise click.ClickException("the stream ended before the job did")

        return anyio.run(read)

    def close(self) -> None:
        self.store.close()


class ServerSource:
    """The job through a joblog server's API."""

    def __init__(self, target: Target, any_id: str) -> None:
        self.any_id = any_id
        self.api = ServerApi(target)

    def summary(self) -> dict[str, Any]:
        return self._get(job_path(self.any_id), {})

    def newest_events(
        self, filters: EventFilter, before_id: int | None, limit: int
    ) -> list[LogEvent]:
        """Page back through ``/logs`` with ``before_id``; the API filters one step at a
        time, so several steps are read one by one and merged."""
        if limit <= 0:
            return []
        query: dict[str, Any] = {}
        if filters.min_level not in (None, Level.DEBUG):
            query["min_level"] = filters.min_level.value
        if filters.since is not None:
            query["since"] = iso(filters.since)
        if filters.contains:
            query["contains"] = filters.contains
        found: dict[int, LogEvent] = {}
        for step_id in filters.step_ids or (None,):
            if step_id is not None:
                query["step_id"] = step_id
            below = before_id if before_id is not None else MAX_BIGINT
            taken = 0
            while taken < limit:
                page = self._get(
                    job_path(self.any_id, "/logs"),
                    {**query, "before_id": below, "limit": min(_PAGE, limit - taken)},
                )
                events = _events(self.api, page.get("events"))
                found.update((event.id, event) for event in events)
                taken += len(events)
                older = page.get("next_before_id")
                if not events or not isinstance(older, int) or older >= below:
                    break
                below = older
        return [found[key] for key in sorted(found)][-limit:]

    def follow(self, handle: Handler) -> int:
        return self.api.follow(job_path(self.any_id, "/stream"), handle)

    def close(self) -> None:
        self.api.close()

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.api.get(path, params, any_id=self.any_id)


def _events(api: ServerApi, raw: Any) -> list[LogEvent]:
    if not isinstance(raw, list):
        raise api.not_joblog("a /logs page without an events list")
    try:
        return [event_from_dict(item) for item in raw]
    except ValueError as error:
        raise api.not_joblog(f"an event that is not one: {error}") from error


@contextlib.contextmanager
def _clean_errors() -> Iterator[None]:
    try:
        yield
    except JobLogError as error:
        raise fail_cleanly(error) from error
