"""The ingest section of RESULTS.md and its target rows, from one ``joblog bench ingest`` run."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["HEADING", "OLD_HEADINGS", "TARGET_ROW", "burst_targets", "render_burst"]

HEADING = "## Ingest: a burst of log lines in one job, as a log shipper"
#: Headings this section replaces in a RESULTS.md written before it.
OLD_HEADINGS = ("## Ingest: logging calls in a job -> batch writer -> database",)
#: Target rows of this section (and of the ingest section before it), replaced in place.
TARGET_ROW = re.compile(r"^\| (sqlite|postgresql|mariadb): (ingest|logging call|burst|caller)")


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _mib(value: int) -> str:
    return f"{value / (1 << 20):,.0f} MiB"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def _caller_us(result: dict[str, Any], lines: int) -> float:
    return float(result["produce_seconds"]) / lines * 1e6


def burst_targets(data: dict[str, Any]) -> list[list[str]]:
    lines = data["config"]["lines"]
    rows = []
    for r in data["results"]:
        b = r["backend"]
        mine, bare = r["joblog"]["rate"], r["bare"]["rate"]
        rows.append(
            [
                f"{b}: burst ingest ≥ 0.7x bare bulk insert",
                f"{mine:,.0f} vs {bare:,.0f} events/s ({_ratio(mine, bare):.2f}x)",
                _verdict(mine >= 0.7 * bare),
            ]
        )
        if "joblog_hog" in r:
            hog, bare_hog = r["joblog_hog"]["rate"], r["bare_hog"]["rate"]
            rows.append(
                [
                    f"{b}: burst ingest ≥ 0.5x bare with a CPU hog",
                    f"{hog:,.0f} vs {bare_hog:,.0f} ({_ratio(hog, bare_hog):.2f}x)",
                    _verdict(hog >= 0.5 * bare_hog),
                ]
            )
        caller, null = _caller_us(r["joblog"], lines), _caller_us(r["null"], lines)
        rows.append(
            [
                f"{b}: caller ≤ 2x NullHandler, writer busy",
                f"{caller:.1f} µs vs {null:.1f} µs ({_ratio(caller, null):.2f}x)",
                _verdict(caller <= 2 * null),
            ]
        )
        dropped = r["joblog"]["dropped"] + r.get("joblog_hog", {}).get("dropped", 0)
        rows.append(
            [f"{b}: burst ingest drops nothing", f"{dropped:,} dropped", _verdict(not dropped)]
        )
        k = r["kill"]
        rows.append(
            [
                f"{b}: burst after SIGKILL loses ≤ one sync interval",
                f"{k['lost']:,} of {k['lines']:,} lost (one interval ≈ "
                f"{k['lines_per_sync_interval']:,} lines)",
                _verdict(k["lost"] <= k["lines_per_sync_interval"]),
            ]
        )
    return rows


def render_burst(data: dict[str, Any]) -> list[str]:
    cfg = data["config"]
    lines = cfg["lines"]
    options = ", ".join(f"{k}={v!r}" for k, v in cfg.get("options", {}).items()) or "defaults"
    out = [
        HEADING,
        "",
        f"Run: {data['date']}, by `joblog bench ingest --lines {lines}` (generated; do not edit). "
        f'{lines:,} calls of `log.info("copied block %d of disk %s", i, "disk-0", '
        'extra={"bytes": 65536})` inside one job, timed from the first call until `flush()` '
        f"returns (Tracker options: {options}). Each measurement runs in a fresh process on a "
        "fresh database, so peak RSS is that run's alone. **bare**: the same rows, made before "
        "the clock starts, through the driver's bulk path (sqlite3 executemany, psycopg COPY, "
        f"PyMySQL multi-row INSERT), {cfg['bare_batch']:,} rows a transaction. **stdlib**: the "
        "same calls through `QueueHandler` -> `QueueListener` -> a handler that bulk-inserts "
        f"every {cfg['pipeline_batch']:,} records with the same driver. **hog**: another "
        "process spins on the second core (bare measured under it too).",
        "",
    ]
    machine = data.get("machine") or {}
    if machine:
        load = ", ".join(f"{value:.1f}" for value in machine.get("load_average") or ())
        out += [
            f"Machine: {machine.get('cores')} cores, shared with other work; load average when "
            f"the run started: {load or '-'}. Ratios are within this run; "
            "runs minutes apart differ by up to 2x here.",
            "",
        ]
    rows = []
    for r in data["results"]:
        bare = r["bare"]["rate"]
        for key, label in VARIANTS:
            if key not in r:
                continue
            v = r[key]
            cpu = "-" if key == "bare" else f"{v['cpu_seconds'] / lines * 1e6:.1f} µs"
            rows.append(
                [
                    r["backend"],
                    label,
                    f"{v['rate']:,.0f}",
                    f"{_ratio(v['rate'], bare):.2f}x",
                    cpu,
                    _mib(v["peak_rss"]),
                    f"{v['counted']:,}",
                    f"{v['spilled']:,}" if "spilled" in v else "-",
                    f"{v.get('dropped', 0):,}",
                ]
            )
    out += _table(
        ["backend", "path", "events/s", "vs bare", "CPU per line", "peak RSS", "stored",
         "spilled to the journal", "dropped"],
        rows,
    )  # fmt: skip
    out += [
        "CPU per line: user + system time of the run's processes (the writer process "
        "included) over the lines; on a shared machine it moves less than events/s.",
        "",
    ]
    if any("joblog_hog" in r for r in data["results"]):
        rows = []
        for r in data["results"]:
            if "joblog_hog" not in r:
                continue
            hog, bare = r["joblog_hog"], r["bare_hog"]
            rows.append(
                [
                    r["backend"],
                    f"{bare['rate']:,.0f}",
                    f"{hog['rate']:,.0f}",
                    f"{_ratio(hog['rate'], bare['rate']):.2f}x",
                    f"{hog['counted']:,}",
                    f"{hog['dropped']:,}",
                ]
            )
        out += ["With a CPU hog on the other core:", ""]
        out += _table(
            ["backend", "bare events/s", "joblog events/s", "vs bare", "stored", "dropped"], rows
        )
    rows = []
    for r in data["results"]:
        null = _caller_us(r["null"], lines)
        row = [r["backend"], f"{null:.1f} µs"]
        for key in ("joblog", "joblog_process", "stdlib"):
            if key in r:
                mine = _caller_us(r[key], lines)
                row.append(f"{mine:.1f} µs ({_ratio(mine, null):.2f}x)")
            else:
                row.append("-")
        rows.append(row)
    out += [
        "The caller's cost of one call while the writer is busy (the burst's calls over their "
        "own time, before `flush()`), next to the same calls to a `NullHandler`:",
        "",
        *_table(
            ["backend", "NullHandler", "joblog", 'joblog, writer="process"', "stdlib pipeline"],
            rows,
        ),
    ]
    rows = []
    for r in data["results"]:
        k = r["kill"]
        rows.append(
            [
                r["backend"],
                f"{k['lines']:,}",
                f"{k['stored_before_restart']:,}",
                f"{k['shipped_by_next_tracker']:,}",
                f"{k['stored']:,}",
                f"{k['lost']:,}",
                f"{k['lines_per_sync_interval']:,}",
            ]
        )
    out += [
        f'SIGKILL of the producer right after its {cfg["kill_after"]:,}th call with '
        f'`durability="journal"` (synced every {cfg["sync_interval"] * 1000:g} ms), then the '
        "next Tracker on the same journal ships what was left:",
        "",
        *_table(
            ["backend", "lines", "stored before the kill", "shipped by the next Tracker",
             "stored", "lost", "lines in one sync interval"],
            rows,
        ),
    ]  # fmt: skip
    out += [WHAT_IS_LEFT, ""]
    for r in data["results"]:
        profile = r.get("profile")
        if not profile:
            continue
        out += [
            f"Profile of the default path, {r['backend']}, {profile['lines']:,} lines "
            "(cProfile, top functions by own time; the caller's thread, then the writer's):",
            "",
            "```",
            profile["caller"].rstrip(),
            "```",
            "",
            "```",
            profile["writer"].rstrip(),
            "```",
            "",
        ]
    for note in data.get("notes", []):
        out += [note, ""]
    return out


#: Why the targets the tables show missed are missed: the mechanism, read from the profiles
#: below and the CPU column (numbers in it are per line, from those profiles' shares).
WHAT_IS_LEFT = (
    "**What is left, and why** (from the profiles below). The caller's thread and the "
    "writer thread share one GIL. Per line, the logging call itself (LogRecord, "
    "findCaller) is the NullHandler floor and joblog's handler adds about 1 µs (a ContextVar "
    "read, getMessage, a deque append); the writer thread then spends about 3 µs of Python "
    "making the row (attrs JSON, timestamp, text checks) plus the driver's own Python work "
    "(sqlite3's parameter binding, psycopg's COPY `write_row`, PyMySQL's escaping), and the "
    "caller waits whenever the writer holds the GIL: that wait, not the handler's work, is "
    "why a call costs 3-5x the NullHandler while the writer is busy, and why the rate stays "
    "near the stdlib queue pipeline's. A burst longer than the memory queue (200,000 lines) "
    "spills the rest to the journal, and a spilled line costs the caller its row and JSON "
    'record too (the spilled column). `writer="process"` moves only '
    "the driver's work out of the process: rows are still made (and pickled) in the caller's "
    "process, so on two busy cores it buys little. What 0.7x of the bare driver and 2x the "
    "NullHandler need is the row making out of the caller's process as well: the record's "
    "raw fields shipped in batches (pipe or journal) and rows made and inserted by the "
    "writer process."
)

VARIANTS = (
    ("bare", "bare driver"),
    ("joblog", "joblog (writer thread, default)"),
    ("joblog_process", 'joblog, writer="process"'),
    ("stdlib", "stdlib QueueHandler pipeline"),
)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]
