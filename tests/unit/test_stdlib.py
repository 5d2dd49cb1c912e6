"""Turning log records into rows: levels, messages, attrs."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

import pytest

from joblog import Level
from joblog.stdlib import (
    MAX_MESSAGE_CHARS,
    clean_message,
    dumps_attrs,
    level_name,
    make_event_row,
)


class TestLevels:
    @pytest.mark.parametrize(
        ("levelno", "expected"),
        [
            (5, "DEBUG"),
            (10, "DEBUG"),
            (20, "INFO"),
            (25, "INFO"),
            (30, "WARN"),
            (40, "ERROR"),
            (50, "ERROR"),
        ],
    )
    def test_stdlib_levels_map_to_the_tables_four(self, levelno: int, expected: str) -> None:
        assert level_name(levelno) == expected

    @pytest.mark.parametrize(
        ("text", "level"),
        [
            ("warning", Level.WARN),
            ("WARN", Level.WARN),
            ("critical", Level.ERROR),
            (" info ", Level.INFO),
        ],
    )
    def test_parse_accepts_names_in_any_case(self, text: str, level: Level) -> None:
        assert Level.parse(text) is level

    def test_parse_refuses_unknown_levels(self) -> None:
        with pytest.raises(ValueError, match="unknown level"):
            Level.parse("LOUD")


class TestMessages:
    def test_long_messages_are_cut_with_a_visible_marker(self) -> None:
        message = clean_message("x" * (MAX_MESSAGE_CHARS + 10))
        assert message.endswith("[truncated 10 characters]")
        assert message.startswith("x" * MAX_MESSAGE_CHARS)

    def test_nul_is_replaced(self) -> None:
        assert clean_message("a\x00b") == "a\ufffdb"


class TestAttrs:
    def test_non_finite_floats_and_unknown_objects_become_text(self) -> None:
        text = dumps_attrs({"ratio": math.nan, "when": datetime(2025, 1, 1), "obj": object()})
        assert text is not None
        data = json.loads(text)
        assert data["ratio"] == "nan"
        assert data["when"] == "2025-01-01T00:00:00"
        assert data["obj"].startswith("<object")

    def test_empty_attrs_are_null(self) -> None:
        assert dumps_attrs({}) is None

    def test_a_record_becomes_a_row_with_extras_and_utc_ts(self) -> None:
        record = logging.LogRecord(
            "failover", logging.WARNING, "f.py", 1, "disk %s", ("sda",), None
        )
        record.vm = "pgtest2"
        row = make_event_row((("job", 7, "ext"), record.getMessage(), record, (None, None)))
        job_id, step_id, external_id, level, message, attrs, ts, trace_id, span_id = row
        assert (trace_id, span_id) == (None, None)
        assert (job_id, step_id, external_id, level, message) == (
            "job",
            7,
            "ext",
            "WARN",
            "disk sda",
        )
        assert json.loads(attrs or "{}") == {"logger": "failover", "vm": "pgtest2"}
        assert ts == datetime.fromtimestamp(record.created, UTC).replace(tzinfo=None)
