"""``joblog logs`` on a database: newest-N, NDJSON, --step, --since, any ID, hostile input.

Every test here only reads, so one database per backend serves the whole module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

import joblog
from joblog._ops import InsertEvents
from joblog.api.serialize import event_to_dict
from joblog.cli import main as cli
from joblog.model import Level, LogEvent
from joblog.storage import schema
from joblog.storage.queries import EventFilter
from tests.conftest import BACKENDS
from tests.support.api import backend_database

EXTERNAL = "ext-logs-1"
EVENTS_ONLY = "go-producer-7"
HOSTILE = "quota [red]x[/] [link=http://evil.example]y[/link] \x1b[2J\r\u202eevil\nsecond line"
CHECKS = [f"check {n}" for n in range(5)]
SNAPS = [f"snap {n}" for n in range(3)]
ALL = ["planning", *CHECKS, "Disk slow", *SNAPS, HOSTILE, "done"]


@pytest.fixture(scope="module", params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from backend_database(request, tmp_path_factory)


@pytest.fixture(scope="module")
def job(url: str) -> dict[str, Any]:
    """A job with two steps run and one declared but never started; an events-only ID
    with one old line and two new ones; a legacy failover row."""
    tracker = joblog.Tracker(url, flush_interval=0.01)
    steps = ["validate", "snapshot", "boot"]
    with tracker.job(
        "failover", "live", external_job_id=EXTERNAL, context_id="vm-ctx-1", steps=steps
    ) as handle:
        tracker.log_event("DEBUG", "planning")
        with handle.step("validate") as validate:
            for line in CHECKS:
                tracker.log_event("INFO", line)
            tracker.log_event("WARN", "Disk slow")
        with handle.step("snapshot") as snapshot:
            for line in SNAPS:
                tracker.log_event("INFO", line)
            tracker.log_event("ERROR", HOSTILE)
        tracker.log_event("INFO", "done")
    tracker.flush(30)
    old = datetime(2020, 1, 1)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (None, None, EVENTS_ONLY, "INFO", text, None, ts, None, None)
        for text, ts in (("old line", old), ("new line 1", now), ("new line 2", now))
    ]
    tracker.store.apply_batch([InsertEvents(rows)])
    with tracker.store.engine.begin() as conn:
        conn.execute(
            schema.failover_jobs.insert().values(
                job_id="legacy-1", job_type="live", status="pending", created_at=now
            )
        )
    tracker.close()
    return {"id": handle.id, "validate": validate.id, "snapshot": snapshot.id}


def logs(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["logs", *args, "--url", url])


def ndjson(url: str, *args: str) -> list[dict[str, Any]]:
    result = logs(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def messages(url: str, *args: str) -> list[str]:
    return [event["message"] for event in ndjson(url, *args)]


class TestNewestFirstChosen:
    def test_limit_takes_the_newest_and_prints_them_oldest_first(
        self, url: str, job: dict[str, Any]
    ) -> None:
        assert messages(url, EXTERNAL, "--limit", "3") == [SNAPS[-1], HOSTILE, "done"]

    def test_without_a_limit_every_line_of_a_short_log(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EXTERNAL) == ALL

    def test_json_is_the_apis_event_object_and_loses_nothing(
        self, url: str, job: dict[str, Any]
    ) -> None:
        events = ndjson(url, EXTERNAL)
        sample = LogEvent(1, None, None, None, Level.INFO, "", None, datetime.now(UTC))
        assert all(set(event) == set(event_to_dict(sample)) for event in events)
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        assert events[-2]["message"] == HOSTILE  # escaped as JSON, read back exactly
        assert {e["job_id"] for e in events} == {job["id"]}

    def test_json_bytes_are_ascii_so_nothing_acts_on_a_terminal(
        self, url: str, job: dict[str, Any]
    ) -> None:
        result = logs(url, EXTERNAL, "--json")
        assert result.stdout.isascii()


class TestFilters:
    def test_step_by_name(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EXTERNAL, "--step", "validate") == [*CHECKS, "Disk slow"]

    def test_step_by_number_with_the_newest_n(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EXTERNAL, "--step", "2", "--limit", "2") == [SNAPS[-1], HOSTILE]

    def test_steps_as_a_comma_list(self, url: str, job: dict[str, Any]) -> None:
        both = messages(url, EXTERNAL, "--step", "validate,2")
        assert both == [*CHECKS, "Disk slow", *SNAPS, HOSTILE]

    def test_a_declared_step_not_started_has_no_lines(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EXTERNAL, "--step", "boot") == []

    def test_an_unknown_step_names_the_jobs_steps(self, url: str, job: dict[str, Any]) -> None:
        result = logs(url, EXTERNAL, "--step", "nope")
        assert result.exit_code == 2
        assert "no step 'nope'" in result.output and "validate, snapshot, boot" in result.output

    def test_level_and_contains_any_case(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EXTERNAL, "--level", "warning") == ["Disk slow", HOSTILE]
        assert messages(url, EXTERNAL, "--contains", "DISK") == ["Disk slow"]

    def test_since_a_duration_back_from_now(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EVENTS_ONLY, "--since", "1h") == ["new line 1", "new line 2"]

    @pytest.mark.parametrize(
        ("since", "expected"),
        [
            ("2019-12-31T23:00:00Z", ["old line", "new line 1", "new line 2"]),
            ("2020-01-01T01:00:00+02:00", ["old line", "new line 1", "new line 2"]),
            ("2020-01-01 00:00:01", ["new line 1", "new line 2"]),
            ("0001-01-01T00:00:00Z", ["old line", "new line 1", "new line 2"]),
            ("9999-12-31T23:59:59Z", []),
        ],
    )
    def test_since_an_iso_time_on_every_backend(
        self, url: str, job: dict[str, Any], since: str, expected: list[str]
    ) -> None:
        assert messages(url, EVENTS_ONLY, "--since", since) == expected


class TestEveryIdTheApiResolves:
    @pytest.mark.parametrize("which", ["uuid", "external", "context"])
    def test_a_job_by_any_of_its_ids(self, url: str, job: dict[str, Any], which: str) -> None:
        any_id = {"uuid": job["id"], "external": EXTERNAL, "context": "vm-ctx-1"}[which]
        assert messages(url, any_id) == ALL

    def test_an_events_only_id(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EVENTS_ONLY) == ["old line", "new line 1", "new line 2"]

    def test_a_legacy_row_has_no_lines(self, url: str, job: dict[str, Any]) -> None:
        result = logs(url, "legacy-1")
        assert result.exit_code == 0 and result.stdout == ""

    @pytest.mark.parametrize(
        "any_id",
        [
            "unknown",
            "nul\x00x",
            "lone\ud800",
            "esc\x1b[2Jx",
            "[red]x[/]",
            "[link=http://e]x",
            "a" * 300,
        ],
    )
    def test_an_unknown_or_impossible_id_is_a_clean_error(
        self, url: str, job: dict[str, Any], any_id: str
    ) -> None:
        result = logs(url, any_id)
        assert result.exit_code == 1
        assert "no job is known by the ID" in result.output
        assert "Traceback" not in result.output
        assert not any(ch in result.output for ch in "\x00\x1b\ud800")


class TestPlainText:
    def test_markup_and_escapes_are_printed_as_text(self, url: str, job: dict[str, Any]) -> None:
        result = logs(url, EXTERNAL, "--step", "snapshot", "--level", "ERROR")
        assert result.exit_code == 0
        out = result.stdout
        assert "quota [red]x[/] [link=http://evil.example]y[/link]" in out
        assert "\\x1b[2J\\x0d\\u202eevil" in out
        assert not any(ch in out for ch in "\x1b\r\u202e")

    def test_a_newline_in_a_message_cannot_pass_for_a_line(
        self, url: str, job: dict[str, Any]
    ) -> None:
        result = logs(url, EXTERNAL, "--level", "ERROR")
        first, second = result.stdout.splitlines()
        assert first.split()[1] == "ERROR"
        assert second == " " * 22 + "second line"


class TestHostileOptions:
    def test_markup_in_a_filter_is_literal_text(self, url: str, job: dict[str, Any]) -> None:
        assert messages(url, EXTERNAL, "--contains", "[red]x[/]") == [HOSTILE]
        assert messages(url, EXTERNAL, "--contains", "%") == []
        assert messages(url, EXTERNAL, "--contains", "_") == []


class TestUsageErrorsNeedNoDatabase:
    """Refused before any database is opened: the same on every backend."""

    NOWHERE = "sqlite:///no/such/dir/joblog.db"

    def test_limit_zero_without_follow(self) -> None:
        result = logs(self.NOWHERE, EXTERNAL, "--limit", "0")
        assert result.exit_code == 2
        assert "it is for --follow" in result.output

    @pytest.mark.parametrize("limit", ["-1", "100001", str(10**30), "ten"])
    def test_a_limit_out_of_range(self, limit: str) -> None:
        result = logs(self.NOWHERE, EXTERNAL, "--limit", limit)
        assert result.exit_code == 2
        assert "--limit" in result.output and "Traceback" not in result.output

    @pytest.mark.parametrize(
        "since", ["yesterday", "2026-13-45", "999999999d", "0s", "-5m", "\x00", "\ud800"]
    )
    def test_since_garbage(self, since: str) -> None:
        result = logs(self.NOWHERE, EVENTS_ONLY, "--since", since)
        assert result.exit_code == 2, result.output
        assert "--since" in result.output and "Traceback" not in result.output
        assert "\x00" not in result.output

    @pytest.mark.parametrize("option", ["--contains", "--step"])
    @pytest.mark.parametrize("value", ["nul\x00", "lone\udcff"])
    def test_text_that_no_database_stores(self, option: str, value: str) -> None:
        result = logs(self.NOWHERE, EXTERNAL, option, value)
        assert result.exit_code == 2, result.output
        assert option in result.output and "Traceback" not in result.output

    @pytest.mark.parametrize("any_id", ["nul\x00", "lone\ud800", "a" * 300])
    def test_an_id_no_tier_can_hold(self, any_id: str) -> None:
        result = logs(self.NOWHERE, any_id)
        assert result.exit_code == 1
        assert "no job is known by the ID" in result.output
        assert not any(ch in result.output for ch in "\x00\ud800")


class TestTheFilterInPython:
    """EventFilter.matches (a live tail's new lines) agrees with the SQL filter."""

    @pytest.mark.parametrize(
        "filters",
        [
            {"min_level": Level.WARN},
            {"contains": "DISK"},
            {"contains": "[red]"},
            {"contains": "%"},
            {"since": datetime(2020, 1, 1, tzinfo=UTC)},
            {"since": datetime(2999, 1, 1, tzinfo=UTC)},
            {"step": "validate"},
            {"step": "validate", "min_level": Level.INFO, "contains": "check"},
        ],
    )
    def test_matches_what_the_database_selects(
        self, url: str, job: dict[str, Any], filters: dict[str, Any]
    ) -> None:
        chosen_filters = dict(filters)
        step = chosen_filters.pop("step", None)
        steps = (job[step],) if step else ()
        event_filter = EventFilter(step_ids=steps, **chosen_filters)
        with joblog.Tracker(url) as tracker:
            every = tracker.store.reads.list_events(job_id=job["id"], limit=1000)
            chosen = tracker.store.reads.list_events(
                job_id=job["id"], filters=event_filter, limit=1000
            )
        assert chosen == [event for event in every if event_filter.matches(event)]
