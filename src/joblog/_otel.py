"""The active OpenTelemetry span, if any, as the IDs a log event keeps.

joblog does not depend on OpenTelemetry. A process that uses it has imported
``opentelemetry.trace`` before any span could be active, so a logging call looks the
module up in ``sys.modules`` (a dict lookup) instead of importing it: a process without
OpenTelemetry pays nothing, one with it pays the context lookup of the current span.
"""

from __future__ import annotations

import sys

__all__ = ["NO_SPAN", "SpanIds", "current_span_ids", "is_hex_id"]

#: (trace_id as 32 lowercase hex digits, span_id as 16), or (None, None) outside a span.
SpanIds = tuple[str | None, str | None]
NO_SPAN: SpanIds = (None, None)
_HEX = frozenset("0123456789abcdef")


def current_span_ids() -> SpanIds:
    """The trace and span IDs of the span active in this context, else :data:`NO_SPAN`."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return NO_SPAN
    try:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return NO_SPAN
        return format(context.trace_id, "032x"), format(context.span_id, "016x")
    except Exception:  # a broken or partial OpenTelemetry install must not lose the line
        return NO_SPAN


def is_hex_id(value: str, digits: int) -> bool:
    """True for ``digits`` lowercase hex digits, not all zero (W3C trace context's rule)."""
    return len(value) == digits and _HEX.issuperset(value) and value != "0" * digits
