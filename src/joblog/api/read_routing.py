"""Which database a request reads when the server has a read replica (``--read-url``).

:class:`ReadRouting` gives every request a read session (:mod:`joblog.storage.replica`):

* a request that writes (any method but GET, HEAD and OPTIONS) reads the primary, and its
  2xx answer carries ``Joblog-Position``, the primary's WAL position after the write;
* a read that sends a ``Joblog-Position`` back is answered by the replica only once the
  replica has replayed that far, otherwise by the primary: a client reads its own writes;
* streams read the primary (their route depends on :func:`reads_from_primary`).

The middleware is installed only when the Store has a replica; without one nothing here
runs and no header is sent.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from joblog.api.errors import json_refusal
from joblog.exceptions import JobLogError
from joblog.storage.replica import parse_position, pin_to_primary, read_session
from joblog.storage.store import Store

__all__ = ["POSITION_HEADER", "ReadRouting", "reads_from_primary"]

#: Sent with every write's answer; sent back on a read to read that write.
POSITION_HEADER = "Joblog-Position"
_HEADER_KEY = POSITION_HEADER.lower().encode("latin-1")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReadRouting:
    """Pure ASGI middleware: one read session per request (see the module doc)."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        writes = scope["method"] not in _READS
        after = None
        raw = next((value for key, value in scope["headers"] if key == _HEADER_KEY), None)
        if raw is not None:
            try:
                after = parse_position(raw.decode("latin-1"))
            except ValueError:
                detail = [
                    {
                        "loc": ["header", POSITION_HEADER.lower()],
                        "msg": f"not a {POSITION_HEADER} this server sent",
                        "type": "value_error",
                    }
                ]
                await json_refusal(400, detail, scope["path"])(scope, receive, send)
                return
        with read_session(primary=writes, after=after):
            if writes and scope["path"].startswith("/api/"):
                send = self._with_position(send)
            await self.app(scope, receive, send)

    def _with_position(self, send: Send) -> Send:
        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                try:
                    position = await run_in_threadpool(self.store.write_position)
                except JobLogError:  # the write is done; the primary went away since
                    position = None
                if position is not None:
                    headers = [*message.get("headers", ()), (_HEADER_KEY, position.encode())]
                    message = {**message, "headers": headers}
            await send(message)

        return send_with_position


async def reads_from_primary() -> None:
    """A route dependency: this request's reads go to the primary (streams)."""
    pin_to_primary()
