"""Server-Sent Events, read incrementally: what ``joblog logs --follow`` consumes.

The parsing rules are the WHATWG ``text/event-stream`` ones the dashboard's EventSource
follows: lines end in LF, CR or CRLF; ``:`` starts a comment; ``data`` lines join with
LF; a blank line dispatches the event; ``id`` sets the ID a reconnect sends as
``Last-Event-ID`` (one holding a NUL is ignored); ``retry`` sets the reconnect delay.
The bytes come from an HTTP body or from the stream module run in process, so both
paths read the same frames the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LINE_BYTES", "SseEvent", "SseParser", "StreamGarbage"]

#: The longest line accepted; a server that sends more without a line break is not a
#: joblog stream (an event's data is one JSON line of at most a few MiB).
MAX_LINE_BYTES = 32 * 1024 * 1024


class StreamGarbage(ValueError):
    """What the server sent is not a joblog event stream."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    id: str | None
    data: str


class SseParser:
    """Feed it bytes as they come; it returns the events completed so far."""

    def __init__(self, max_line_bytes: int | None = None) -> None:
        self.max_line_bytes = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
        #: The ID of the newest event, sent back as ``Last-Event-ID`` on reconnect.
        self.last_event_id: str | None = None
        #: The reconnect delay the server asked for, in milliseconds.
        self.retry_ms: int | None = None
        self._buffer = bytearray()
        self._event = ""
        self._data: list[str] = []
        self._first_line = True

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        start = 0
        buffer = self._buffer
        while True:
            newline = buffer.find(b"\n", start)
            # A CR before the LF (or anywhere, without one) ends the line first.
            carriage = buffer.find(b"\r", start, newline if newline >= 0 else len(buffer))
            end = carriage if carriage >= 0 else newline
            if end < 0:
                break
            if buffer[end] == 0x0D:  # CR: a CRLF may be split across two chunks
                if end + 1 == len(buffer):
                    break
                step = 2 if buffer[end + 1] == 0x0A else 1
            else:
                step = 1
            line = bytes(buffer[start:end])
            start = end + step
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buffer[:start]
        if len(buffer) > self.max_line_bytes:
            raise StreamGarbage(f"a line longer than {self.max_line_bytes} bytes")
        return events

    def _line(self, raw: bytes) -> SseEvent | None:
        if self._first_line:
            self._first_line = False
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        line = raw.decode("utf-8", errors="replace")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event or "message", self.last_event_id, "\n".join(data))
