"""The client's HTTP layer: state calls with safe retries, and the writer's event sink.

State calls (start a job, finish a step, ...) are retried only when the request cannot
have been acted on: the connection was refused, or the server said 429/502/503/504. A
timeout after the request was sent is not retried (a step could be started twice); it
surfaces as :class:`StorageUnavailable`.

:class:`EventSink` is what the :class:`~joblog.writer.BatchWriter` sees instead of a
database: ``apply_batch(ops, batch_key)`` POSTs the events to ``/api/v1/events`` under keys
derived from ``batch_key``. The writer retries a batch that failed transiently with the
same key, so the server stores each chunk once however often it is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from joblog._ops import EventRow, InsertEvents, Op
from joblog.exceptions import (
    ExternalIdInUse,
    InvalidTransition,
    JobNotFound,
    RemoteError,
    StorageError,
    StorageUnavailable,
)

__all__ = ["EventSink", "HttpSession", "RemoteError"]

#: Answers that mean "not done, try again later".
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: What one events request may carry: under the server's 5 MiB default body cap.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_REQUEST_EVENTS = 1000
#: The server's cap on one event's attrs (serialized), see joblog.api.write_schemas.
MAX_ATTRS_BYTES = 64 * 1024


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def raise_for_answer(response: httpx.Response) -> None:
    """Map an error answer to joblog's exceptions (the ones the tracker raises)."""
    status = response.status_code
    if status < 400:
        return
    body = _body(response)
    error = body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 404 and isinstance(body, dict):
        raise JobNotFound(str(body.get("id", "")), str(detail or body))
    if error == "external_id_in_use":
        raise ExternalIdInUse(str(body["external_job_id"]), str(body["running_job_id"]))
    if error == "invalid_transition":
        raise InvalidTransition(str(detail))
    if status in RETRY_STATUSES or status >= 500:
        raise StorageUnavailable(f"joblog server unavailable ({status}): {body}")
    raise RemoteError(status, body)


class HttpSession:
    """One httpx client for one thread's calls, with the token and the retry rule."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["User-Agent"] = "joblog-client"
        self.retries = retries
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """The server's answer; StorageUnavailable when it cannot be reached (after retries)."""
        delay = 0.1
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if last:
                    raise StorageUnavailable(f"joblog server unreachable: {exc}") from exc
            except httpx.HTTPError as exc:  # sent, maybe acted on: do not send it again
                raise StorageUnavailable(f"joblog server did not answer: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A JSON object from a 2xx answer; joblog's exceptions otherwise."""
        response = self.send(method, path, body)
        raise_for_answer(response)
        answer = response.json()
        if not isinstance(answer, dict):
            raise RemoteError(response.status_code, answer, "expected a JSON object")
        return answer

    def close(self) -> None:
        self._http.close()


def event_json(row: EventRow) -> dict[str, Any] | None:
    """A writer row as the API's event object (None for an event that names no job)."""
    job_id, step_id, external_job_id, level, message, attrs_json, ts, trace_id, span_id = row
    if job_id is None and external_job_id is None:
        return None
    event: dict[str, Any] = {"level": level, "message": message, "ts": _iso(ts)}
    if job_id is not None:
        event["job_id"] = job_id
    if external_job_id is not None:
        event["external_job_id"] = external_job_id
    if step_id is not None:
        event["step_id"] = step_id
    if attrs_json:
        event["attrs"] = _bounded_attrs(attrs_json)
    if trace_id is not None:
        event["trace_id"] = trace_id
        event["span_id"] = span_id
    return event


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds") + ("Z" if ts.tzinfo is None else "")


def _bounded_attrs(attrs_json: str) -> dict[str, Any]:
    attrs = json.loads(attrs_json)
    size = len(attrs_json.encode("utf-8"))
    if size <= MAX_ATTRS_BYTES or not isinstance(attrs, dict):
        return attrs if isinstance(attrs, dict) else {"value": attrs}
    # Keep what says where the event came from and what failed; drop the rest.
    kept: dict[str, Any] = {"attrs_truncated_bytes": size}
    for key in ("logger", "exc_type"):
        if isinstance(attrs.get(key), str):
            kept[key] = attrs[key][:1000]
    if isinstance(attrs.get("exception"), str):
        kept["exception"] = attrs["exception"][-16_000:]
    return kept


def chunks(events: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split events into requests of at most 1000 events and ~4 MiB (deterministically)."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        event_size = len(json.dumps(event, ensure_ascii=False).encode("utf-8")) + 1
        if current and (
            len(current) >= MAX_REQUEST_EVENTS or size + event_size > MAX_REQUEST_BYTES
        ):
            out.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        out.append(current)
    return out


class EventSink:
    """Stands in for the Store behind a BatchWriter: ships InsertEvents rows over HTTP."""

    def __init__(self, session: HttpSession) -> None:
        self.session = session

    def apply_batch(self, ops: Sequence[Op], batch_key: str | None = None) -> bool:
        """Ship the events of ``ops``; False when the server had every chunk already."""
        rows = [row for op in ops if isinstance(op, InsertEvents) for row in op.rows]
        events = [event for event in map(event_json, rows) if event is not None]
        stored = not events
        for index, chunk in enumerate(chunks(events)):
            stored = self._post(f"{batch_key}.{index}", chunk) or stored
        return stored

    def _post(self, key: str, events: list[dict[str, Any]]) -> bool:
        try:
            response = self.session.send(
                "POST", "/api/v1/events", {"batch_key": key, "events": events}
            )
        except StorageUnavailable:
            raise  # the writer keeps the batch and sends it again under the same key
        status = response.status_code
        if status in RETRY_STATUSES or status >= 500:
            raise StorageUnavailable(f"joblog server unavailable ({status})")
        if status >= 400:
            raise StorageError(f"joblog server refused {len(events)} event(s): {_body(response)}")
        answer = _body(response)
        return not (isinstance(answer, dict) and answer.get("duplicate") is True)
