"""Events logged inside an OpenTelemetry span keep its trace and span IDs (real SDK)."""

from __future__ import annotations

import logging
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider

import joblog
from joblog._otel import current_span_ids, is_hex_id
from tests.support.db import events

_provider = TracerProvider()
tracer = _provider.get_tracer("joblog-tests")


class TestSpanIds:
    def test_outside_a_span_there_are_none(self) -> None:
        assert current_span_ids() == (None, None)

    def test_inside_a_span_they_are_the_spans_in_hex(self) -> None:
        with tracer.start_as_current_span("op") as span:
            context = span.get_span_context()
            assert current_span_ids() == (
                f"{context.trace_id:032x}",
                f"{context.span_id:016x}",
            )

    @pytest.mark.parametrize(
        ("value", "digits", "ok"),
        [
            ("0af7651916cd43dd8448eb211c80319c", 32, True),
            ("0" * 32, 32, False),
            ("0AF7651916CD43DD8448EB211C80319C", 32, False),
            ("0af7651916cd43dd8448eb211c80319", 32, False),
            ("b7ad6b7169203331", 16, True),
            ("b7ad6b716920333g", 16, False),
            ("", 16, False),
        ],
    )
    def test_hex_ids_follow_w3c_trace_context(self, value: str, digits: int, ok: bool) -> None:
        assert is_hex_id(value, digits) is ok


class TestStoredEvents:
    def test_events_carry_the_active_span_and_none_outside(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        with tracker.job("failover", "live", external_job_id="traced-1"):
            log.info("before any span")
            with tracer.start_as_current_span("snapshot") as outer:
                log.info("in the outer span")
                with tracer.start_as_current_span("copy") as inner:
                    log.warning("in the inner span")
        assert tracker.flush(30)
        stored = {row["message"]: row for row in events(tracker.store)}
        assert (stored["before any span"]["trace_id"], stored["before any span"]["span_id"]) == (
            None,
            None,
        )
        outer_context, inner_context = outer.get_span_context(), inner.get_span_context()
        assert stored["in the outer span"]["trace_id"] == f"{outer_context.trace_id:032x}"
        assert stored["in the outer span"]["span_id"] == f"{outer_context.span_id:016x}"
        assert stored["in the inner span"]["trace_id"] == f"{outer_context.trace_id:032x}"
        assert stored["in the inner span"]["span_id"] == f"{inner_context.span_id:016x}"

    def test_a_thread_logs_under_its_own_span(
        self, tracker: joblog.Tracker, log: logging.Logger
    ) -> None:
        seen: dict[str, str] = {}

        def work(name: str) -> None:
            with tracer.start_as_current_span(name) as span:
                seen[name] = f"{span.get_span_context().span_id:016x}"
                log.info(name)

        with tracker.job("failover", "live") as job:
            threads = [
                threading.Thread(target=joblog.carry(work), args=(f"t{i}",)) for i in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert tracker.flush(30)
        rows = [row for row in events(tracker.store) if row["job_id"] == job.id]
        assert {row["message"]: row["span_id"] for row in rows} == seen
