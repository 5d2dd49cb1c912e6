"""RESULTS.md and the lookup chart, rendered from the JSON each benchmark run leaves.

Each section (lookup, ingest, api, retention, housekeeping) keeps its own JSON under
``benchmarks/.data``; every ratio inside a section comes from that one run, and each section
says when it ran. Those two last can be put into RESULTS.md alone (:func:`write_in_place`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from joblog.bench.burst_report import OLD_HEADINGS, TARGET_ROW, burst_targets, render_burst
from joblog.bench.housekeeping import render_housekeeping
from joblog.bench.report_scale import scale_sections, scale_targets
from joblog.bench.retention import render_retention
from joblog.bench.strategies import STRATEGIES

__all__ = ["load_section", "render", "save_section", "write_in_place", "write_report"]

TITLES = {s.key: s.title for s in STRATEGIES}
QUERY_TYPES = {s.key: s.query_type for s in STRATEGIES}
SEED_WORDS = {
    "events_column": "Excellent",
    "jobs_column": "-",
    "message_prefix": "Good",
    "correlation_table": "Excellent",
    "json_attrs": "Poor",
}


def save_section(data_dir: Path, name: str, data: dict[str, Any]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))


def load_section(data_dir: Path, name: str) -> dict[str, Any] | None:
    path = data_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _us(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:,.0f} ms"
    if value >= 1000:
        return f"{value / 1000:.2f} ms"
    return f"{value:.0f} µs" if value >= 10 else f"{value:.1f} µs"


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "none"
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f} MiB"
    return f"{value / 1024:.0f} KiB"


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**MISSED**")


# -- lookup ----------------------------------------------------------------------------------


def _largest(lookup: dict[str, Any]) -> dict[str, dict[str, Any]]:
    by_backend: dict[str, dict[str, Any]] = {}
    for result in lookup["results"]:
        current = by_backend.get(result["backend"])
        if current is None or result["size"] > current["size"]:
            by_backend[result["backend"]] = result
    return by_backend


def _bare(result: dict[str, Any]) -> dict[str, Any]:
    """The bare driver's lookup measured interleaved with joblog's (older runs: alone)."""
    bare: dict[str, Any] = result.get("bare_interleaved") or result["strategies"]["jobs_column"]
    return bare


def lookup_targets(lookup: dict[str, Any]) -> list[list[str]]:
    rows = []
    for backend, result in _largest(lookup).items():
        bare = _bare(result)["p99_us"]
        mine = result["joblog_locate"]["p99_us"]
        resolve = result["joblog_resolve"]["p99_us"]
        at = _size(result["size"])
        rows.append(
            [
                f"{backend}: external→internal p99 ≤ 2x bare driver ({at})",
                f"{_us(mine)} vs {_us(bare)} ({mine / bare:.2f}x)",
                _verdict(mine <= 2 * bare),
            ]
        )
        rows.append(
            [f"{backend}: external→internal p99 < 1 ms ({at})", _us(mine), _verdict(mine < 1000)]
        )
        rows.append(
            [f"{backend}: resolve() p99 < 5 ms ({at})", _us(resolve), _verdict(resolve < 5000)]
        )
    return rows


def _seed_table(lookup: dict[str, Any]) -> list[str]:
    largest = _largest(lookup)
    backends = list(largest)
    header = ["Approach", "Query type", "Seed said"]
    header += [f"{b} p50 / p99 ({_size(largest[b]['size'])})" for b in backends]
    header += [f"{b} index" for b in backends]
    header += [f"{b} insert cost" for b in backends]
    rows = []
    for strategy in STRATEGIES:
        row = [TITLES[strategy.key], QUERY_TYPES[strategy.key], SEED_WORDS[strategy.key]]
        for b in backends:
            s = largest[b]["strategies"][strategy.key]
            row.append(f"{_us(s['p50_us'])} / {_us(s['p99_us'])}")
        for b in backends:
            row.append(_bytes(largest[b]["strategies"][strategy.key]["index_bytes"]))
        for b in backends:
            cost = lookup.get("insert_cost", {}).get(b, {}).get("variants", {}).get(strategy.key)
            row.append("-" if cost is None else f"{cost['slowdown_pct']:+.0f}%")
        rows.append(row)
    return _table(header, rows)


def _lookup_sections(lookup: dict[str, Any]) -> list[str]:
    out = [
        "## Lookup: the seed's comparison, measured",
        "",
        f"Run: {lookup['date']}. Keys per measurement: {lookup['config']['keys']:,} random "
        f"existing external IDs + {lookup['config']['missing_fraction']:.0%} missing ones, "
        "after a warm-up pass. Strategies without an index scan the whole table; they are "
        f"time-boxed to {lookup['config']['scan_budget_s']:g} s per size (n below). Insert "
        "cost: bulk-loading the same "
        f"{lookup['config']['insert_cost_events']:,} events with vs without the strategy's "
        "index or table (negative = noise).",
        "",
    ]
    out += _seed_table(lookup)
    out += [
        "### joblog next to the bare driver (same run, same keys)",
        "",
        "Bare driver: a raw DBAPI cursor running `SELECT id FROM job_tracking WHERE "
        "external_job_id = ? ORDER BY created_at DESC, id DESC LIMIT 1` (server-side "
        "prepared on PostgreSQL). joblog: `Resolver.locate` (the tiers: UUID, "
        "job_tracking, log_events) and `Resolver.resolve` (job, steps, last 20 events, "
        "children). The three take turns on each key (interleaved), so that drift in the "
        "machine's speed during the run hits them alike.",
        "",
    ]
    rows = []
    for r in lookup["results"]:
        bare = _bare(r)
        mine = r["joblog_locate"]
        res = r["joblog_resolve"]
        rows.append(
            [
                r["backend"],
                _size(r["size"]),
                f"{_us(bare['p50_us'])} / {_us(bare['p99_us'])}",
                f"{_us(mine['p50_us'])} / {_us(mine['p99_us'])}",
                f"{mine['p99_us'] / bare['p99_us']:.2f}x",
                f"{_us(res['p50_us'])} / {_us(res['p99_us'])}",
                f"{mine['n']:,}",
            ]
        )
    out += _table(
        [
            "backend",
            "events",
            "bare p50 / p99",
            "joblog locate() p50 / p99",
            "p99 ratio",
            "joblog resolve() p50 / p99",
            "n",
        ],
        rows,
    )
    out += ["### Every strategy, every size", ""]
    rows = []
    for r in lookup["results"]:
        for key, s in r["strategies"].items():
            rows.append(
                [
                    r["backend"],
                    _size(r["size"]),
                    TITLES[key],
                    _us(s["p50_us"]),
                    _us(s["p99_us"]),
                    f"{s['n']:,}",
                    f"{s['hits']:,}",
                    _bytes(s["index_bytes"]),
                ]
            )
    out += _table(["backend", "events", "strategy", "p50", "p99", "n", "found", "index"], rows)
    out += [
        "### Why the message prefix index is not selective",
        "",
        "`Failover job started: unified-live-failover-` is 44 characters, so a 50-character "
        "prefix keeps only 6 characters of the VM name and none of the timestamp: every "
        "lookup reads all rows sharing those 50 characters and filters them on the full "
        "message.",
        "",
    ]
    rows = [
        [r["backend"], _size(r["size"]), f"{r['jobs']:,}", f"{r['prefix_candidates']:,.0f}"]
        for r in lookup["results"]
    ]
    out += _table(["backend", "events", "jobs", "rows per lookup sharing the 50-char prefix"], rows)
    out += _insert_cost(lookup)
    out += ["### Query plans (largest size, one existing key)", ""]
    for backend, r in _largest(lookup).items():
        for key, s in r["strategies"].items():
            out += [
                f"**{backend} — {TITLES[key]}**",
                "",
                "```sql",
                s["sql"],
                "```",
                "```",
                s["explain"],
                "```",
                "",
            ]
    return out


def _insert_cost(lookup: dict[str, Any]) -> list[str]:
    costs = lookup.get("insert_cost", {})
    if not costs:
        return []
    rows = []
    for backend, c in costs.items():
        rows.append([backend, "baseline (no external-ID index)", f"{c['baseline_rate']:,.0f}", "-"])
        for key, v in c["variants"].items():
            rows.append([backend, TITLES[key], f"{v['rate']:,.0f}", f"{v['slowdown_pct']:+.1f}%"])
    head = ["backend", "schema", "bulk load events/s", "slower than baseline"]
    return ["### Insert cost of each strategy", "", *_table(head, rows)]


# -- api ---------------------------------------------------------------------------------------


def api_targets(api: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in api["results"]:
        if r["pollers"] == 64:
            rows.append(
                [
                    f"{r['backend']}: status endpoint ≥ 1,500 req/s (64 pollers)",
                    f"{r['rps']:,.0f}",
                    _verdict(r["rps"] >= 1500),
                ]
            )
            rows.append(
                [
                    f"{r['backend']}: p99 < 50 ms at 64 pollers",
                    _us(r["p99_us"]),
                    _verdict(r["p99_us"] < 50_000),
                ]
            )
    return rows


def _api_sections(api: dict[str, Any]) -> list[str]:
    out = ["## Status API", "", f"Run: {api['date']}. {api.get('description', '')}", ""]
    rows = [
        [
            r["backend"],
            str(r["pollers"]),
            f"{r['rps']:,.0f}",
            _us(r["p50_us"]),
            _us(r["p99_us"]),
            f"{r['requests']:,}",
            f"{r['errors']:,}",
        ]
        for r in api["results"]
    ]
    out += _table(["backend", "pollers", "requests/s", "p50", "p99", "requests", "errors"], rows)
    return out


# -- the document --------------------------------------------------------------------------------


def render(
    sections: dict[str, dict[str, Any] | None], chart: str | None, analysis: str | None = None
) -> str:
    lookup, ingest, api = sections.get("lookup"), sections.get("ingest"), sections.get("api")
    scale = sections.get("scale")
    machine: dict[str, Any] = next(
        (s["machine"] for s in (lookup, ingest, api, scale) if s and "machine" in s), {}
    )
    out = [
        "# joblog benchmarks",
        "",
        "Regenerated by `make bench` (`joblog bench all`); do not edit by hand. Raw numbers: "
        "`benchmarks/.data/*.json`.",
        "",
    ]
    if machine:
        drivers = ", ".join(f"{k} {v}" for k, v in machine["drivers"].items())
        out += [
            "## Machine",
            "",
            f"- CPU: {machine['cpu']}, {machine['cores']} cores, "
            f"{machine['memory_gib']} GiB memory, {machine['os']}",
            f"- Python {machine['python']}, SQLite {machine['sqlite']}, PostgreSQL "
            f"{machine['postgresql']}, MariaDB {machine['mariadb']}",
            f"- Drivers: {drivers}",
            f"- Load average when the run started: {machine.get('load_average')}",
            "",
        ]
    targets = []
    if lookup:
        targets += lookup_targets(lookup)
    if ingest:
        targets += burst_targets(ingest)
    if api:
        targets += api_targets(api)
    if scale:
        targets += scale_targets(scale)
    out += ["## Targets", "", *_table(["target", "measured", "verdict"], targets)]
    for section in (lookup, ingest, api):
        if section and section.get("notes"):
            out += [str(section["notes"]), ""]
    if lookup:
        out += _lookup_sections(lookup)
        if chart:
            out += [f"![lookup p99 vs size]({chart})", ""]
    if ingest:
        out += render_burst(ingest)
    if api:
        out += _api_sections(api)
    if scale:
        out += scale_sections(scale)
    for name, render_section in IN_PLACE.items():
        data = sections.get(name)
        if data:
            out += render_section(data)
    if analysis:
        out += _analysis_section(analysis)
    return "\n".join(out).rstrip() + "\n"


def _analysis_section(analysis: str) -> list[str]:
    return [
        "## Why the missed targets are missed",
        "",
        "From `benchmarks/ANALYSIS.md` (written from profiles on this machine; the "
        "numbers above are this run's):",
        "",
        analysis.strip(),
        "",
    ]


def _replace_section(
    lines: list[str], section: list[str], old_headings: tuple[str, ...] = ()
) -> None:
    """Put ``section`` where the section of its heading (or an older heading of it)
    stands, else at the end."""
    found = next((h for h in (section[0], *old_headings) if h in lines), None)
    if found is None:
        lines += ["", *section]
        return
    start = lines.index(found)
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
    lines[start:end] = section


def write_chart(lookup: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({r["backend"] for r in lookup["results"]})
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4.5), squeeze=False)
    series = [(s.key, TITLES[s.key]) for s in STRATEGIES]
    series += [("joblog_locate", "joblog locate()"), ("joblog_resolve", "joblog resolve()")]
    for ax, backend in zip(axes[0], backends, strict=True):
        results = sorted(
            (r for r in lookup["results"] if r["backend"] == backend), key=lambda r: r["size"]
        )
        sizes = [r["size"] for r in results]
        for key, label in series:
            values = [(r["strategies"].get(key) or r.get(key) or {}).get("p99_us") for r in results]
            style = "--" if key.startswith("joblog") else "-"
            ax.plot(sizes, values, style, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(backend)
        ax.set_xlabel("log events")
        ax.set_ylabel("p99 latency (µs)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: Path) -> Path:
    data_dir = out_dir / ".data"
    names = ("lookup", "ingest", "api", "topology", "scale", *IN_PLACE)
    sections = {name: load_section(data_dir, name) for name in names}
    chart = None
    lookup = sections["lookup"]
    if lookup:
        write_chart(lookup, out_dir / "lookup_p99.png")
        chart = "lookup_p99.png"
    analysis_path = out_dir / "ANALYSIS.md"
    analysis = analysis_path.read_text() if analysis_path.exists() else None
    path = out_dir / "RESULTS.md"
    path.write_text(render(sections, chart, analysis))
    return path


def _with_targets(
    section: list[str], data: dict[str, Any], targets: list[list[str]], title: str | None = None
) -> list[str]:
    """``section`` with the run's load and its own targets table under its heading (a
    section put in place has no share in the main targets table)."""
    heading, *body = section
    load = data.get("machine", {}).get("load_average")
    return [
        heading,
        "",
        f"Load average when the run started: {load}.",
        "",
        *([f"### {title}", ""] if title else []),
        *_table(["target", "measured", "verdict"], targets),
        *body,
    ]


def _topology_in_place(data: dict[str, Any]) -> list[str]:
    from joblog.bench.topology import render_topology, topology_targets

    return _with_targets(render_topology(data), data, topology_targets(data))


#: Sections that can be put into RESULTS.md in place, without the others' raw numbers.
IN_PLACE: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "topology": _topology_in_place,
    "retention": render_retention,
    "housekeeping": render_housekeeping,
}
#: Sections rendered with the others by :func:`render` that can also go in place, with
#: the headings they replace, their rows of the Targets table and how to spot those rows.
IN_PLACE_WITH_TARGETS: dict[
    str,
    tuple[
        Callable[[dict[str, Any]], list[str]],
        tuple[str, ...],
        Callable[[dict[str, Any]], list[list[str]]],
        re.Pattern[str],
    ],
] = {"ingest": (render_burst, OLD_HEADINGS, burst_targets, TARGET_ROW)}


def _scale_in_place(data: dict[str, Any]) -> list[str]:
    return _with_targets(scale_sections(data), data, scale_targets(data), "Targets (scale)")


#: What ``write_in_place`` can put: the sections above, and ``scale`` (which the full
#: report renders with the others, its targets in the main table).
_PLACEABLE: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    **IN_PLACE,
    "scale": _scale_in_place,
}


def write_in_place(out_dir: Path, name: str) -> Path:
    """Put section ``name`` into RESULTS.md in place (or at the end), leaving the sections
    whose raw numbers are not in this checkout's ``.data`` as they are."""
    data = load_section(out_dir / ".data", name)
    path = out_dir / "RESULTS.md"
    if data is None or not path.exists():
        return write_report(out_dir)
    lines = path.read_text().rstrip("\n").split("\n")
    old_headings: tuple[str, ...] = ()
    if name in IN_PLACE_WITH_TARGETS:
        render_section, old_headings, targets, target_row = IN_PLACE_WITH_TARGETS[name]
        section = render_section(data)
        lines = _replace_target_rows(lines, target_row, _table(["", "", ""], targets(data))[2:-1])
    else:
        section = _PLACEABLE[name](data)
    _replace_section(lines, section, old_headings)
    analysis = out_dir / "ANALYSIS.md"
    if analysis.exists():  # the prose that explains the figures, as it is now
        _replace_section(lines, _analysis_section(analysis.read_text()))
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    return path


def _replace_target_rows(lines: list[str], row: re.Pattern[str], new: list[str]) -> list[str]:
    """``lines`` with the Targets table's rows that ``row`` matches replaced by ``new``
    (where the first of them stood, else at the table's end)."""
    if "## Targets" not in lines:
        return lines
    start = lines.index("## Targets")
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
    table = lines[start:end]
    kept = [line for line in table if not row.match(line)]
    at = next((n for n, line in enumerate(table) if row.match(line)), None)
    if at is None:
        at = max(n for n, line in enumerate(table) if line.startswith("|")) + 1
    else:
        at = len([line for line in table[:at] if not row.match(line)])
    return lines[:start] + kept[:at] + new + kept[at:] + lines[end:]
