"""The CLI through a joblog server: its documented HTTP API, and nothing else.

``joblog logs --server`` and ``joblog cancel --server`` use the same routes as any other
client (``/api/v1/jobs/{any_id}``, ``/logs``, ``/stream``, ``/cancel``), so the server
resolves the ID with the API's resolver. Every answer that is not what the API documents
becomes one clear :class:`click.ClickException`, never a traceback: a refused token, a
server without the write routes, an unknown ID, a database the server cannot reach, or
something that is not a joblog server at all.

The stream is read with ``Last-Event-ID`` resume: a connection that drops (reset, a
silent server past the read timeout, a body that ends before ``end``) is opened again
after the server's ``retry`` delay, and the server sends what was missed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import click
import httpx

from joblog import __version__
from joblog.cli.common import Target, escaped
from joblog.cli.sse import SseEvent, SseParser, StreamGarbage

__all__ = ["READ_TIMEOUT", "ServerApi", "job_path"]

#: Seconds without a byte after which a stream counts as dropped: the server sends a
#: keepalive comment every 15 s by default.
READ_TIMEOUT = 45.0
#: Bounds on the reconnect delay a server may ask for (``retry:``), in seconds.
RETRY_BOUNDS = (0.1, 30.0)
#: Answers that mean "not now": the request was not acted on, ask again later.
_NOT_NOW = frozenset({429, 502, 503, 504})
#: How much of an error body is read and shown.
_BODY_LIMIT = 64 * 1024


def job_path(any_id: str, suffix: str = "") -> str:
    """``/api/v1/jobs/{any_id}{suffix}`` with the ID percent-encoded, slashes included."""
    return "/api/v1/jobs/" + quote(any_id, safe="") + suffix


class _NotNow(Exception):
    """A transient answer (503, a dropped connection): try again after a pause."""


class ServerApi:
    """One joblog server, with the token sent as ``Authorization: Bearer``."""

    def __init__(self, target: Target, *, transport: httpx.BaseTransport | None = None) -> None:
        assert target.server is not None
        self.server = target.server
        headers = {"User-Agent": f"joblog-cli/{__version__}"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self._http = httpx.Client(
            base_url=self.server,
            headers=headers,
            timeout=httpx.Timeout(10.0, read=READ_TIMEOUT),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # -- plain calls ------------------------------------------------------------------------

    def call(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON object of an answer in 2xx or 4xx (the API's documented
        answers); a ClickException for anything else, after a few tries when the server
        said "not now" or could not be reached."""
        delay = 0.2
        for attempt in range(4):
            try:
                response = self._http.request(method, path, params=params)
            except httpx.ConnectError as error:
                if attempt == 3:
                    raise self.unreachable(error) from error
            except httpx.HTTPError as error:
                raise click.ClickException(
                    f"the joblog server at {self.server} did not answer: {_why(error)}"
                ) from error
            else:
                if response.status_code not in _NOT_NOW or attempt == 3:
                    return response.status_code, self._json(response)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def get(
        self, path: str, params: dict[str, Any] | None = None, *, any_id: str | None = None
    ) -> dict[str, Any]:
        """The JSON object of a 200 answer; a ClickException for any other (an unknown
        ``any_id`` says so)."""
        status, body = self.call("GET", path, params)
        if status == 200:
            return body
        if status == 404 and body.get("error") == "job_not_found":
            raise click.ClickException(
                f"no job is known by the ID '{escaped(any_id or body.get('id'))}'"
            )
        detail = body.get("detail") or body.get("error") or body
        raise click.ClickException(
            f"the joblog server at {self.server} refused the request ({status}):"
            f" {_short(str(detail))}"
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status >= 500:
            raise click.ClickException(self._server_trouble(status, _short(response.text)))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self.not_joblog(f"{status} {_content_type(response)}")
        if status in (401, 403):
            raise self.refused(status, body)
        return body

    # -- the stream ---------------------------------------------------------------------------

    def follow(self, path: str, handle: Callable[[SseEvent], int | None]) -> int:
        """Read the event stream at ``path`` until ``handle`` returns an exit code.

        Until the stream first opens, a server that cannot be reached or answers
        something else is an error (after a few tries if it says "not now"); once it
        has opened, a dropped connection is opened again with ``Last-Event-ID``, as
        often as it takes (Ctrl-C stops), after the server's ``retry`` delay.
        """
        last_id: str | None = None
        delay = 2.0
        opened = False
        refusals = 0
        outage: str | None = None
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            parser = SseParser()
            try:
                with self._stream(path, headers) as chunks:
                    opened = True
                    if outage is not None:
                        _note("reconnected; resuming after the last event received")
                        outage = None
                    for chunk in chunks:
                        for event in parser.feed(chunk):
                            code = handle(event)
                            last_id = parser.last_event_id
                            if code is not None:
                                return code
                why = "the server closed the stream before the job's end"
            except StreamGarbage as error:
                raise self.not_joblog(str(error)) from error
            except httpx.TransportError as error:
                if not opened:
                    if isinstance(error, httpx.ConnectError):
                        raise self.unreachable(error) from error
                    raise self.not_joblog(_why(error)) from error
                why = _why(error)
            except _NotNow as error:
                refusals += 1
                if not opened and refusals > 3:
                    raise click.ClickException(
                        f"the joblog server at {self.server}: {error}"
                    ) from error
                why = str(error)
            if parser.retry_ms is not None:
                delay = min(max(parser.retry_ms / 1000, RETRY_BOUNDS[0]), RETRY_BOUNDS[1])
            if outage is None:
                _note(f"stream interrupted ({why}); reconnecting every {delay:g}s, Ctrl-C stops")
                outage = why
            time.sleep(delay)

    @contextmanager
    def _stream(self, path: str, headers: dict[str, str]) -> Iterator[Iterator[bytes]]:
        with self._http.stream("GET", path, headers=headers) as response:
            status = response.status_code
            kind = _content_type(response)
            if status == 200 and kind == "text/event-stream":
                yield response.iter_bytes()
                return
            if status in _NOT_NOW:
                raise _NotNow(f"the server answered {status}")
            body = _read_some(response)
            if status >= 500:
                raise click.ClickException(self._server_trouble(status, _short(body)))
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            if status == 200 or not isinstance(answer, dict):
                raise self.not_joblog(f"{status} {kind}")
            if status in (401, 403):
                raise self.refused(status, answer)
            if status == 404 and answer.get("error") == "job_not_found":
                raise click.ClickException(
                    f"no job is known by the ID '{escaped(answer.get('id'))}'"
                )
            raise click.ClickException(
                f"the joblog server at {self.server} refused the stream ({status}): "
                f"{_short(json.dumps(answer))}"
            )

    # -- messages ------------------------------------------------------------------------------

    def unreachable(self, error: BaseException) -> click.ClickException:
        return click.ClickException(
            f"cannot reach the joblog server at {self.server}: {_why(error)}"
        )

    def not_joblog(self, what: str) -> click.ClickException:
        return click.ClickException(
            f"{self.server} did not answer as a joblog server does ({escaped(what)});"
            " check --server or JOBLOG_SERVER"
        )

    def refused(self, status: int, body: dict[str, Any]) -> click.ClickException:
        if status == 401:
            return click.ClickException(
                f"the joblog server at {self.server} wants a token: give --token or JOBLOG_TOKEN"
            )
        return click.ClickException(
            f"the joblog server at {self.server} refused the token"
            f" ({_short(str(body.get('detail') or body.get('error') or ''))})"
        )

    def _server_trouble(self, status: int, body: str) -> str:
        if status in _NOT_NOW:
            return f"the joblog server at {self.server} cannot serve now ({status}): {body}"
        return f"the joblog server at {self.server} failed ({status}): {body}"


def _content_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


def _read_some(response: httpx.Response) -> str:
    """At most _BODY_LIMIT bytes of a streamed answer (a garbage server may send GBs)."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= _BODY_LIMIT:
            break
    return data[:_BODY_LIMIT].decode("utf-8", errors="replace")


def _short(text: str, limit: int = 300) -> str:
    text = escaped(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + "…"


def _why(error: BaseException) -> str:
    return _short(str(error) or type(error).__name__)


def _note(message: str) -> None:
    click.echo(f"joblog: {message}", err=True)
