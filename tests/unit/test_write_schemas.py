"""The ingest body's fast paths give what the general ones give (timestamps, attrs)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from joblog._storable import dumps_attrs
from joblog.api.write_schemas import EventIn

PYDANTIC_DATETIME = TypeAdapter(datetime)


def ts_of(value: Any) -> datetime:
    event = EventIn.model_validate({"job_id": "j", "level": "INFO", "message": "m", "ts": value})
    assert event.ts is not None
    return event.ts


def reference(value: Any) -> datetime:
    """pydantic's own parse, as naive UTC (one without offset is UTC)."""
    parsed = PYDANTIC_DATETIME.validate_python(value)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


class TestTimestamps:
    @pytest.mark.parametrize(
        "value",
        [
            "2025-09-22T08:00:00Z",
            "2025-09-22T08:00:00.1Z",
            "2025-09-22T08:00:00.123456Z",
            "2025-09-22T08:00:00.1234567Z",  # more digits than a microsecond: pydantic's path
            "2025-09-22T08:00:00+02:00",
            "2025-09-22T08:00:00.5-05:30",
            "2025-09-22T08:00:00-00:00",
            "2025-09-22T08:00:00",
            "2025-09-22 08:00:00Z",
            "2025-09-22t08:00:00z",
            "2025-09-22T08:00:00+0200",
            "1970-01-01T01:00:00+01:00",
            1758528000,
        ],
    )
    def test_the_same_instant_as_pydantics_own_parse(self, value: Any) -> None:
        assert ts_of(value) == reference(value)
        assert ts_of(value).tzinfo is None

    @pytest.mark.parametrize(
        "value",
        [
            "2025-02-30T00:00:00Z",
            "2025-09-22T24:00:00Z",
            "2025-09-22T08:00:00+25:00",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:00:00-02:00",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "yesterday",
            "",
        ],
    )
    def test_out_of_range_or_malformed_is_refused_naming_ts(self, value: str) -> None:
        with pytest.raises(ValidationError) as refused:
            ts_of(value)
        assert all(error["loc"][-1] == "ts" for error in refused.value.errors())


class TestAttrs:
    @pytest.mark.parametrize(
        "attrs",
        [
            {"host": "node-1", "n": 5, "ok": True, "none": None, "list": [1, 2.5, "x"]},
            {"unicode": "é ✓ \u2028", "nested": {"a": {"b": [1]}}},
            {"nan": math.nan, "inf": math.inf},
            {"huge": 2**70},
            {"lone": "\ud800"},
            {"nul\x00key": "v\x00"},
            {"deep": json.loads("[" * 30 + "]" * 30)},
        ],
    )
    def test_the_stored_text_means_what_the_general_encoder_stores(
        self, attrs: dict[str, Any]
    ) -> None:
        event = EventIn.model_validate(
            {"job_id": "j", "level": "INFO", "message": "m", "attrs": attrs}
        )
        general = dumps_attrs(attrs)
        assert event.attrs is not None and general is not None
        assert json.loads(event.attrs) == json.loads(general)

    def test_an_empty_object_stores_nothing(self) -> None:
        event = EventIn.model_validate(
            {"job_id": "j", "level": "INFO", "message": "m", "attrs": {}}
        )
        assert event.attrs is None

    @pytest.mark.parametrize("attrs", ["text", [1, 2], 3])
    def test_anything_but_an_object_is_refused_naming_attrs(self, attrs: Any) -> None:
        with pytest.raises(ValidationError) as refused:
            EventIn.model_validate({"job_id": "j", "level": "INFO", "message": "m", "attrs": attrs})
        assert refused.value.errors()[0]["loc"] == ("attrs",)


class TestLevels:
    @pytest.mark.parametrize(
        ("spelled", "stored"),
        [
            ("info", "INFO"),
            ("Warning", "WARN"),
            ("WARN", "WARN"),
            (" error ", "ERROR"),
            ("critical", "ERROR"),
            ("FATAL", "ERROR"),
            ("dEbUg", "DEBUG"),
        ],
    )
    def test_spellings_map_to_the_stored_level(self, spelled: str, stored: str) -> None:
        event = EventIn.model_validate({"job_id": "j", "level": spelled, "message": "m"})
        assert event.level == stored
