"""The retention, housekeeping and topology sections of RESULTS.md, put in place (no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joblog.bench.report import save_section, write_in_place

RETENTION: dict[str, Any] = {
    "date": "2026-12-06 22:00 UTC",
    "events": 1000,
    "kept": 100,
    "old_days": 10,
    "retention_days": 7,
    "results": [
        {
            "method": m,
            "removed": 1000,
            "seconds": s,
            "wal_bytes": w,
            "size_before": 1 << 20,
            "size_after": 1 << 19,
            "dead_rows": d,
        }
        for m, s, w, d in (
            ("DELETE, joblog (batches of 1,000)", 10.0, 4 << 20, 1000),
            ("DELETE, bare (one statement)", 1.0, 2 << 20, 1000),
            ("partition drop, joblog", 0.5, 1 << 20, 0),
        )
    ],
    "conversion": {
        "seconds": 2.0,
        "swap_ms": 31.0,
        "lock_retries": 0,
        "writer_batches": 10,
        "writer_p50_ms": 5.0,
        "writer_max_ms": 40.0,
        "writer_errors": [],
    },
}
HOUSEKEEPING: dict[str, Any] = {
    "date": "2026-12-06 22:00 UTC",
    "servers": 3,
    "jobs": 50,
    "events": 5000,
    "results": [
        {
            "backend": "postgresql",
            "done_after_s": 3.0,
            "reaped_jobs": 50,
            "reaped_twice": 0,
            "reaped_unknown": 0,
            "pruned_events": 5000,
            "rounds": {"reap ran": 4, "reap skipped": 8},
            "by_server": [{"reaped": 50, "pruned": 5000}, {}, {}],
            "expected": {"jobs": 50, "events": 5000},
        }
    ],
}
OTHERS = "# joblog benchmarks\n\n## Lookup\n\nkept as it is\n\n## Why the missed targets\n\nsame\n"


class TestInPlace:
    def test_a_section_is_added_and_the_others_are_kept(self, tmp_path: Path) -> None:
        (tmp_path / "RESULTS.md").write_text(OTHERS)
        save_section(tmp_path / ".data", "retention", RETENTION)
        text = write_in_place(tmp_path, "retention").read_text()
        assert text.startswith(OTHERS.rstrip("\n"))
        assert "| partition drop, joblog | 1,000 | 0.50 s | 1.0 MiB |" in text
        assert "0.05x | 0.25x | 0.5x |" in text
        assert "locked for the swap 31 ms" in text

    def test_a_second_run_replaces_its_section(self, tmp_path: Path) -> None:
        (tmp_path / "RESULTS.md").write_text(OTHERS)
        save_section(tmp_path / ".data", "housekeeping", HOUSEKEEPING)
        write_in_place(tmp_path, "housekeeping")
        save_section(tmp_path / ".data", "retention", RETENTION)
        write_in_place(tmp_path, "retention")
        changed = dict(HOUSEKEEPING, jobs=51)
        save_section(tmp_path / ".data", "housekeeping", changed)
        text = write_in_place(tmp_path, "housekeeping").read_text()
        assert text.count("## Housekeeping across three servers") == 1
        assert "51 jobs whose heartbeat stopped" in text
        assert text.index("## Housekeeping") < text.index("## Retention")
        assert "| postgresql | 50 of 50 | 0 | 5,000 of 5,000 | 3.0 s | 4 / 8 | 0 / 0 |" in text

    def test_topology_goes_in_place_with_its_targets(self, tmp_path: Path) -> None:
        from tests.unit.test_bench_topology import section

        (tmp_path / "RESULTS.md").write_text(OTHERS)
        data = dict(section(35_000, 20), machine={"load_average": [0.5, 0.4, 0.3]})
        save_section(tmp_path / ".data", "topology", data)
        text = write_in_place(tmp_path, "topology").read_text()
        assert text.startswith(OTHERS.rstrip("\n"))
        assert "Load average when the run started: [0.5, 0.4, 0.3]." in text
        assert "35,000 vs 50,000 (70%) | **met**" in text
        assert "| postgresql | 20/20 | 20/20 |" in text

    def test_scale_replaces_its_section_and_keeps_the_rest(self, tmp_path: Path) -> None:
        old = OTHERS + "\n## Scale: pollers, streams, an old long job\n\nold figures\n"
        (tmp_path / "RESULTS.md").write_text(old)
        scale = {
            "date": "2026-12-07 00:00 UTC",
            "machine": {"load_average": [1.0, 1.0, 1.0]},
            "idle_streams": [
                {
                    "backend": "postgresql",
                    "streams": 100,
                    "round_trips_per_s": 0.2,
                    "per_100_streams": 0.2,
                    "before_per_100": 2200,
                    "fewer": 11000,
                }
            ],
        }
        save_section(tmp_path / ".data", "scale", scale)
        text = write_in_place(tmp_path, "scale").read_text()
        assert "old figures" not in text
        assert text.count("## Scale: pollers, streams, an old long job") == 1
        assert "### Targets (scale)" in text
        assert "0.20 per 100 streams/s vs 2,200 (11,000x) | **met**" in text
        assert "## Lookup\n\nkept as it is" in text

    def test_the_analysis_is_refreshed_with_any_section(self, tmp_path: Path) -> None:
        (tmp_path / "RESULTS.md").write_text(
            OTHERS.replace("## Why the missed targets\n\nsame\n", "")
            + "\n## Why the missed targets are missed\n\nold prose\n"
        )
        (tmp_path / "ANALYSIS.md").write_text("new prose\n")
        save_section(tmp_path / ".data", "retention", RETENTION)
        text = write_in_place(tmp_path, "retention").read_text()
        assert "old prose" not in text
        assert text.count("## Why the missed targets are missed") == 1
        assert "new prose" in text
