"""backfill: log_events.external_job_id from the job row or from attrs, in resumable
batches."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from joblog.exceptions import SchemaError
from joblog.storage import migrate
from joblog.storage.backfill import _derive_external_job_id, backfill
from tests.migration.base_rows import (
    GUI_ID_PGTEST2,
    GUI_ID_WEB01,
    JOB_IDS,
    create_base_revision_database,
)

JOB_GUI_ID = "unified-live-failover-fromjob-1758559999"


class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C between batches."""


@pytest.fixture
def adopted_url(database_url: str) -> str:
    """Rows written at 0001_base, upgraded to head; job 1 now carries a GUI ID."""
    create_base_revision_database(database_url)
    migrate.upgrade(database_url)
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE job_tracking SET external_job_id = :gui WHERE id = :id"),
            {"gui": JOB_GUI_ID, "id": JOB_IDS[1]},
        )
    engine.dispose()
    return database_url


def events(url: str) -> list[tuple[int, str | None, str | None, str | None]]:
    """(id, job_id, attrs as text, external_job_id) per event, by id."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            attrs = "CAST(attrs AS TEXT)" if engine.dialect.name == "postgresql" else "attrs"
            query = f"SELECT id, job_id, {attrs}, external_job_id FROM log_events ORDER BY id"
            return [tuple(row) for row in connection.execute(sa.text(query))]  # type: ignore[misc]
    finally:
        engine.dispose()


def expected_value(job_id: str | None, attrs: str | None) -> str | None:
    if job_id == JOB_IDS[1]:
        return JOB_GUI_ID
    if attrs is not None and GUI_ID_PGTEST2 in attrs and "broken" not in attrs:
        return GUI_ID_PGTEST2
    if attrs is not None and GUI_ID_WEB01 in attrs:
        return GUI_ID_WEB01
    return None


class TestBackfill:
    def test_fills_from_job_row_and_attrs_and_skips_the_rest(self, adopted_url: str) -> None:
        updated = backfill(adopted_url)
        rows = events(adopted_url)
        expected = {row[0]: expected_value(row[1], row[2]) for row in rows}
        assert {row[0]: row[3] for row in rows} == expected
        assert updated == sum(1 for value in expected.values() if value is not None)
        values = set(expected.values())
        assert {JOB_GUI_ID, GUI_ID_PGTEST2, GUI_ID_WEB01, None} == values

    def test_job_row_wins_over_attrs(self, adopted_url: str) -> None:
        backfill(adopted_url)
        job_rows = [row for row in events(adopted_url) if row[1] == JOB_IDS[1]]
        with_gui_attrs = [row for row in job_rows if row[2] and "external_job_id" in row[2]]
        assert with_gui_attrs, "the fixture must hold such rows for this test to mean anything"
        assert {row[3] for row in job_rows} == {JOB_GUI_ID}

    def test_leaves_set_values_alone(self, adopted_url: str) -> None:
        engine = sa.create_engine(adopted_url)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE log_events SET external_job_id = 'kept'"))
        engine.dispose()
        assert backfill(adopted_url) == 0
        assert {row[3] for row in events(adopted_url)} == {"kept"}

    def test_resumes_after_an_interrupted_run(self, adopted_url: str) -> None:
        reports: list[tuple[int, int]] = []

        def interrupt_after_first_batch(examined: int, total: int) -> None:
            reports.append((examined, total))
            raise Interrupted

        with pytest.raises(Interrupted):
            backfill(adopted_url, batch_size=10, progress=interrupt_after_first_batch)
        assert reports == [(10, len(events(adopted_url)))]
        first_ids = [row[0] for row in events(adopted_url)][:10]
        filled_first = {row[0] for row in events(adopted_url) if row[3] is not None}
        assert filled_first, "the first batch must have filled something"
        assert filled_first <= set(first_ids), "only the first batch was committed"

        full: list[tuple[int, int]] = []
        updated = backfill(adopted_url, batch_size=10, progress=lambda e, t: full.append((e, t)))
        rows = events(adopted_url)
        expected_total = sum(1 for row in rows if expected_value(row[1], row[2]) is not None)
        assert updated + len(filled_first) == expected_total
        assert [row[3] for row in rows] == [expected_value(row[1], row[2]) for row in rows]
        assert full[-1][0] == full[-1][1]  # the bar ends full

    def test_is_idempotent(self, adopted_url: str) -> None:
        assert backfill(adopted_url, batch_size=7) > 0
        after_first = events(adopted_url)
        assert backfill(adopted_url, batch_size=7) == 0
        assert events(adopted_url) == after_first

    def test_refuses_a_schema_behind_head(self, database_url: str) -> None:
        migrate.upgrade(database_url, "0002_external_job_id")
        with pytest.raises(SchemaError, match="joblog db upgrade"):
            backfill(database_url)


class TestDeriveExternalJobId:
    """The pure rule, including what old SQLite rows may hold."""

    @pytest.mark.parametrize(
        ("job_value", "attrs", "expected"),
        [
            ("from-job", '{"external_job_id": "from-attrs"}', "from-job"),
            (None, '{"external_job_id": "from-attrs"}', "from-attrs"),
            (None, b'{"external_job_id": "bytes"}', "bytes"),
            (None, '{"external_job_id": "unterminated', None),
            (None, "not json at all", None),
            (None, '["external_job_id"]', None),
            (None, '{"external_job_id": 42}', None),
            (None, '{"external_job_id": ""}', None),
            (None, '{"external_job_id": "' + "x" * 256 + '"}', None),
            (None, None, None),
        ],
    )
    def test_rule(
        self, job_value: str | None, attrs: str | bytes | None, expected: str | None
    ) -> None:
        assert _derive_external_job_id(job_value, attrs) == expected
