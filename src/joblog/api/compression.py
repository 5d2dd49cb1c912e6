"""gzip for responses over 1 KB, for clients that accept it (never the live stream).

Starlette's GZipMiddleware does the compressing; this decides, per RFC 9110, whether the
client accepts gzip: ``gzip`` (or ``x-gzip``) with a non-zero ``q``, or ``*`` with a
non-zero ``q`` when gzip is not listed. Starlette's own test (the substring "gzip"
anywhere in the header) would compress for ``gzip;q=0``, which refuses it. A header that
is too long or unreadable counts as no gzip. ``text/event-stream`` is never compressed
(a stream's frames must reach the client as they are written).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware, GZipResponder, IdentityResponder
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["MINIMUM_SIZE", "Compression", "accepts_gzip"]

#: Smaller bodies go as they are: their gzip framing would cost more than it saves.
MINIMUM_SIZE = 1024
#: zlib level 1: a 4.7 KB summary becomes ~0.9 KB (level 9: ~0.8 KB) at a fraction of
#: the CPU, which matters on the hot path of every poll.
LEVEL = 1
_MAX_HEADER = 4096


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


def accepts_gzip(header: str | None) -> bool:
    """True when an ``Accept-Encoding`` value accepts gzip (see the module doc)."""
    if not header or len(header) > _MAX_HEADER:
        return False
    listed: dict[str, float] = {}
    for item in header.split(","):
        coding, *parameters = item.split(";")
        name = coding.strip().lower()
        if name:
            listed.setdefault(name, _quality(parameters))
    for name in ("gzip", "x-gzip"):
        if name in listed:
            return listed[name] > 0
    return listed.get("*", 0.0) > 0


class Compression(GZipMiddleware):
    """Starlette's GZipMiddleware with :func:`accepts_gzip` deciding."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, minimum_size=MINIMUM_SIZE, compresslevel=LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder: ASGIApp
        if accepts_gzip(Headers(scope=scope).get("accept-encoding")):
            responder = GZipResponder(
                self.app,
                self.minimum_size,
                compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=self.exclude_content_types,
            )
        else:
            responder = IdentityResponder(
                self.app, self.minimum_size, exclude_content_types=self.exclude_content_types
            )
        await responder(scope, receive, send)
