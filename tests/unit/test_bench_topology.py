"""``joblog bench topology``'s report, from a made-up section (no timings measured here)."""

from __future__ import annotations

from typing import Any

from joblog.bench.report import render


def section(http_rate: float, one_winner: int) -> dict[str, Any]:
    return {
        "date": "2026-01-01 00:00 UTC",
        "config": {"duration_s": 10, "batch": 500, "clients": 4, "rounds": 20, "contenders": 12},
        "results": [
            {
                "backend": "postgresql",
                "library_rate": 50_000.0,
                "http_one": {"rate": http_rate, "errors": 0, "server_cpu_us_per_event": 20.0},
                "http_three": {"rate": 2 * http_rate, "errors": 0},
                "contention": {
                    "rounds": 20,
                    "contenders": 12,
                    "one_winner": one_winner,
                    "stored_once": 20,
                },
            }
        ],
    }


class TestTopologyReport:
    def test_the_ratio_to_the_library_decides_the_ingest_target(self) -> None:
        met = render({"topology": section(35_000, 20)}, None)
        missed = render({"topology": section(20_000, 20)}, None)
        assert "35,000 vs 50,000 (70%) | **met**" in met
        assert "20,000 vs 50,000 (40%) | **MISSED**" in missed

    def test_contention_must_be_exact_in_every_round(self) -> None:
        assert "20/20 one winner, 20/20 stored once | **met**" in render(
            {"topology": section(35_000, 20)}, None
        )
        assert "**MISSED**" in render({"topology": section(35_000, 19)}, None)

    def test_the_tables_show_both_runs(self) -> None:
        text = render({"topology": section(35_000, 20)}, None)
        assert "| postgresql | 50,000 | 35,000 | 70% | 20.0 | 70,000 | 0 |" in text
        assert "| postgresql | 20/20 | 20/20 |" in text
