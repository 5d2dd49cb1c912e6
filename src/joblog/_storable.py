"""Making any value storable on every backend: text without NUL or lone surrogates,
JSON bounded in depth and size, anything unknown as its best-effort text.

Used on every row before it is queued for the database (log events, job metadata), so
that no content can make the database refuse a row.
"""

from __future__ import annotations

import json
import json.encoder as json_encoder
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = [
    "MAX_ATTRS_CHARS",
    "MAX_ATTRS_DEPTH",
    "MAX_MESSAGE_CHARS",
    "as_text",
    "clean_message",
    "clean_text",
    "dumps_attrs",
    "storable",
]

#: Longer messages are stored cut, with a visible marker (fits MySQL's TEXT in utf8mb4).
MAX_MESSAGE_CHARS = 16_000

#: What no backend stores in text: NUL (PostgreSQL) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: Attrs nested deeper are cut with a marker (MariaDB refuses JSON deeper than 32).
MAX_ATTRS_DEPTH = 20
#: Attrs JSON longer than this is stored as a truncated text value, with a marker.
MAX_ATTRS_CHARS = 256 * 1024


def as_text(value: object) -> str:
    """``value`` as storable text (``str()`` that cannot raise, then :func:`clean_text`)."""
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:
            value = f"<unprintable {type(value).__name__}>"
    return clean_text(value)


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates (``os.fsdecode`` of a non-UTF-8 file name
    gives those) replaced by U+FFFD, so that every backend stores it."""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return _UNSTORABLE.sub("\ufffd", text)


def clean_message(message: str) -> str:
    """Storable text, cut with a marker when over-long (fits MySQL's TEXT in utf8mb4)."""
    message = clean_text(message)
    if len(message) > MAX_MESSAGE_CHARS:
        cut = len(message) - MAX_MESSAGE_CHARS
        message = f"{message[:MAX_MESSAGE_CHARS]}… [truncated {cut} characters]"
    return message


def dumps_attrs(
    attrs: dict[str, Any] | None, encode: Callable[[dict[str, Any]], str | None] | None = None
) -> str | None:
    """JSON every backend accepts, whatever ``attrs`` holds: no NaN/Infinity, no NUL or
    lone surrogate, depth and size bounded with visible markers, anything unknown (or
    circular, or with non-text keys, or whose ``repr`` raises) as its best-effort text.

    ``encode``: a faster encoder for what the caller knows to be plain JSON values (the
    write API's, parsed from JSON); it returns None where it cannot be trusted, and the
    text it returns gets the same bounds."""
    if not attrs:
        return None
    try:
        text = encode(attrs) if encode is not None else None
        if text is None:
            text = _encode_attrs(attrs)
    except Exception:  # NaN, a circular reference, a tuple key, a raising default
        text = json.dumps(storable(attrs), ensure_ascii=False)
    else:
        # Deep nesting needs at least one bracket a level: count them before walking.
        if text.count("{") + text.count("[") > MAX_ATTRS_DEPTH:
            text = json.dumps(storable(attrs), ensure_ascii=False)
    return _bounded(text)


def _bounded(text: str) -> str:
    """Encoded attrs without escaped NUL or lone surrogates, cut (with a marker) when long."""
    if "\\u0000" in text:
        text = text.replace("\\u0000", "\\ufffd")
    text = clean_text(text)
    if len(text) > MAX_ATTRS_CHARS:
        text = json.dumps(
            {
                "joblog_truncated": f"attrs of {len(text)} characters cut to {MAX_ATTRS_CHARS}",
                "text": text[:MAX_ATTRS_CHARS],
            },
            ensure_ascii=False,
        )
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return _repr(value)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrenderable {type(value).__name__}>"


def storable(value: Any, depth: int = 0, seen: frozenset[int] | set[int] = frozenset()) -> Any:
    """``value`` as plain JSON data, bounded and acyclic."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list | tuple | set | frozenset):
        if depth >= MAX_ATTRS_DEPTH:
            return f"<cut: nested deeper than {MAX_ATTRS_DEPTH} levels>"
        if id(value) in seen:
            return "<circular reference>"
        seen = seen | {id(value)}
        if isinstance(value, dict):
            return {
                as_text(k) if not isinstance(k, str) else clean_text(k): storable(
                    v, depth + 1, seen
                )
                for k, v in list(value.items())
            }
        return [storable(v, depth + 1, seen) for v in list(value)]
    return clean_text(_repr(value))


# One encoder for every call: json.dumps with options builds a new JSONEncoder, and
# JSONEncoder.encode a new C encoder, each time (two thirds of the cost of a small attrs
# object). No circular-reference markers: a circular value ends in RecursionError, which
# dumps_attrs catches like any other encoding error. Neither keeps state between calls.
_make_c_encoder: Callable[..., Callable[[Any, int], Any]] | None = getattr(
    json_encoder, "c_make_encoder", None
)
_c_encoder = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None, _json_default, json_encoder.encode_basestring, None, ": ", ", ", False, False, False
    )
)
_python_encode = json.JSONEncoder(default=_json_default, ensure_ascii=False, allow_nan=False).encode


def _encode_attrs(attrs: dict[str, Any]) -> str:
    if _c_encoder is None:
        return _python_encode(attrs)
    return "".join(_c_encoder(attrs, 0))
