"""``joblog bench``: the benchmarks behind ``benchmarks/RESULTS.md``.

Each command measures, saves its raw numbers under ``<out>/.data`` and regenerates
``<out>/RESULTS.md`` and the chart. The databases it uses are its own (``joblog_bench*``
on the servers, files under ``<out>/.data``) and are dropped and made anew each run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from joblog.bench.backends import BenchDatabase
from joblog.bench.machine import describe_machine
from joblog.bench.progress import Reporter
from joblog.bench.report import save_section, write_report

__all__ = ["bench"]

F = TypeVar("F", bound=Callable[..., Any])
BACKENDS = ("sqlite", "postgresql", "mariadb")
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}


def common_options(fn: F) -> F:
    options = [
        click.option(
            "--backends",
            default=",".join(BACKENDS),
            show_default=True,
            help="Comma-separated: sqlite, postgresql, mariadb.",
        ),
        click.option(
            "--pg-url",
            envvar="JOBLOG_BENCH_POSTGRES_URL",
            show_default=True,
            default="postgresql+psycopg://postgres@127.0.0.1:5432/joblog_bench",
        ),
        click.option(
            "--mariadb-url",
            envvar="JOBLOG_BENCH_MARIADB_URL",
            show_default=True,
            default="mysql+pymysql://root@127.0.0.1:3306/joblog_bench",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("benchmarks"),
            show_default=True,
            help="Where RESULTS.md, the chart and .data/ go.",
        ),
        click.option("--quick", is_flag=True, help="Smaller sizes and shorter runs (smoke test)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def databases(
    backends: str, pg_url: str, mariadb_url: str, out: Path, suffix: str
) -> list[BenchDatabase]:
    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise click.BadParameter(f"unknown backend(s): {', '.join(sorted(unknown))}")
    out_dbs = []
    for backend in chosen:
        if backend == "sqlite":
            path = (out / ".data" / f"bench{suffix}.db").resolve()
            out_dbs.append(BenchDatabase.from_url(f"sqlite:///{path}"))
            continue
        db = BenchDatabase.from_url(pg_url if backend == "postgresql" else mariadb_url)
        db = BenchDatabase(db.url.set(database=f"{db.url.database}{suffix}"))
        reason = db.reachable()
        if reason is not None:
            click.echo(f"skipping {backend}: {reason}", err=True)
            continue
        out_dbs.append(db)
    return out_dbs


def _stamp(data: dict[str, Any], dbs: list[BenchDatabase]) -> dict[str, Any]:
    data["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    data["machine"] = describe_machine(dbs)
    return data


def _finish(out: Path) -> None:
    path = write_report(out)
    click.echo(f"wrote {path}")


@click.group()
def bench() -> None:
    """Benchmarks: ID lookup strategies, ingest rate, status API (see benchmarks/RESULTS.md)."""
    from joblog.cli import EXTRA_MODULES

    missing = sorted(name for name in EXTRA_MODULES["bench"] if not _importable(name))
    if missing:
        raise click.ClickException(
            "`joblog bench` needs the bench extra: pip install 'joblog[bench]'"
            f" ({', '.join(missing)} not installed)"
        )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def run_lookup_command(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    sizes: str,
    huge: bool,
    keys: int,
) -> None:
    from joblog.bench.lookup import LookupConfig, run_lookup

    chosen = [SIZES[s.strip().lower()] for s in sizes.split(",") if s.strip()]
    if huge:
        chosen.append(SIZES["10m"])
    config = LookupConfig(sizes=chosen, keys=keys)
    if quick:
        config = LookupConfig(
            sizes=[10_000, 100_000], keys=500, scan_budget_s=0.5, insert_cost_events=20_000
        )
    dbs = databases(backends, pg_url, mariadb_url, out, "")
    _run_section(out, "lookup", dbs, quiet, lambda reporter: run_lookup(dbs, config, reporter))


def run_ingest_command(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    lines: int,
    hog: bool = True,
) -> None:
    from joblog.bench.burst import BurstConfig, run_burst

    config = BurstConfig(lines=lines, kill_after=min(500_000, lines // 2), hog=hog)
    if quick:
        config = BurstConfig(lines=min(lines, 50_000), kill_after=min(lines, 50_000) // 2)
    dbs = databases(backends, pg_url, mariadb_url, out, "_ingest")
    _run_section(out, "ingest", dbs, quiet, lambda reporter: run_burst(dbs, config, reporter))


def run_api_command(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    duration: float,
) -> None:
    from joblog.bench.api import ApiConfig, run_api

    config = ApiConfig(duration_s=duration)
    if quick:
        config = ApiConfig(duration_s=min(duration, 2.0), events=100_000)
    chosen = ",".join(b for b in backends.split(",") if b.strip() in ("sqlite", "postgresql"))
    dbs = databases(chosen, pg_url, mariadb_url, out, "_api")
    _run_section(out, "api", dbs, quiet, lambda reporter: run_api(dbs, config, reporter))


def run_scale_command(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    parts: str,
    duration: float,
    events: int,
    old_events: int,
    newer_events: int,
) -> None:
    from joblog.bench.scale import PARTS, ScaleConfig, run_scale

    chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
    unknown = set(chosen) - set(PARTS)
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(PARTS)}", param_hint="'--parts'")
    if quick:
        config = ScaleConfig.quick(chosen)
    else:
        config = ScaleConfig(parts=chosen)
        config.status.duration_s = duration
        config.status.events = events
        config.old_job.old_events = old_events
        config.old_job.newer_events = newer_events
    dbs = {db.backend: db for db in databases(backends, pg_url, mariadb_url, out, "_scale")}
    _run_section(
        out, "scale", list(dbs.values()), quiet, lambda reporter: run_scale(dbs, config, reporter)
    )


def run_retention_command(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    events: str,
) -> None:
    from joblog.bench.retention import RetentionConfig, run_retention

    config = RetentionConfig(events=100_000 if quick else _count(events))
    chosen = ",".join(b for b in backends.split(",") if b.strip() == "postgresql")
    if not chosen:
        raise click.BadParameter("retention is measured on postgresql", param_hint="--backends")
    dbs = databases(chosen, pg_url, mariadb_url, out, "")
    _run_section(
        out, "retention", dbs, quiet, lambda reporter: run_retention(dbs, config, reporter)
    )


def _count(text: str) -> int:
    """``10m``, ``500k`` or a plain number."""
    cleaned = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(cleaned[-1:], 1)
    try:
        value = int(cleaned[:-1] if scale > 1 else cleaned) * scale
    except ValueError:
        raise click.BadParameter(f"not a count: {text!r} (e.g. 10m, 500k)") from None
    if value < 1000:
        raise click.BadParameter("at least 1,000 events")
    return value


def _run_section(
    out: Path,
    name: str,
    dbs: list[BenchDatabase],
    quiet: bool,
    run: Callable[[Reporter], dict[str, Any]],
) -> None:
    """Run one benchmark section with progress bars and save its numbers with the machine's."""
    machine_before = _stamp({}, dbs)
    with Reporter(enabled=not quiet) as reporter:
        data = run(reporter)
    data.update(machine_before)
    save_section(out / ".data", name, data)


_sizes_option = click.option(
    "--sizes",
    default="10k,100k,1m",
    show_default=True,
    help="Comma-separated sizes in log events: 10k, 100k, 1m, 10m.",
)
_huge_option = click.option("--huge", is_flag=True, help="Add 10M events (slow).")
_keys_option = click.option(
    "--keys",
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help="Existing keys per measurement.",
)


@bench.command()
@common_options
@_sizes_option
@_huge_option
@_keys_option
def lookup(**options: Any) -> None:
    """External ID -> job: five strategies, the bare driver and joblog, per backend and size."""
    run_lookup_command(**options)
    _finish(options["out"])


@bench.command()
@common_options
@click.option(
    "--lines",
    type=click.IntRange(min=2),
    default=1_000_000,
    show_default=True,
    help="Log lines of the burst (the SIGKILL run makes min(500,000, lines/2)).",
)
@click.option("--no-hog", "hog", flag_value=False, default=True, help="Skip the CPU-hog runs.")
def ingest(**options: Any) -> None:
    """A burst of log lines in one job per backend: events/s next to the bare driver and a
    stdlib queue pipeline, peak RSS, drops, a CPU hog, the caller's cost, SIGKILL."""
    from joblog.bench.report import write_in_place

    run_ingest_command(**options)
    click.echo(f"wrote {write_in_place(options['out'], 'ingest')}")


@bench.command()
@common_options
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=8.0,
    show_default=True,
    help="Seconds per concurrency level.",
)
def api(**options: Any) -> None:
    """The status endpoint by external ID under 1, 16 and 64 concurrent pollers."""
    run_api_command(**options)
    _finish(options["out"])


def run_topology_command(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    duration: float,
) -> None:
    from joblog.bench.topology import TopologyConfig, run_topology

    config = TopologyConfig(duration_s=duration)
    if quick:
        config = TopologyConfig(duration_s=min(duration, 3.0), rounds=5, contenders=6)
    chosen = ",".join(b for b in backends.split(",") if b.strip() in ("postgresql", "mariadb"))
    dbs = databases(chosen, pg_url, mariadb_url, out, "_topology")
    _run_section(out, "topology", dbs, quiet, lambda reporter: run_topology(dbs, config, reporter))


@bench.command()
@common_options
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=10.0,
    show_default=True,
    help="Seconds of each ingest measurement.",
)
def topology(**options: Any) -> None:
    """HTTP ingest per server process vs the library, and three servers on one database."""
    from joblog.bench.report import write_in_place

    run_topology_command(**options)
    click.echo(f"wrote {write_in_place(options['out'], 'topology')}")


@bench.command()
@common_options
@click.option(
    "--parts",
    default="status,streams,resolve",
    show_default=True,
    help="Comma-separated: status (pollers vs a control app), streams (idle round trips, "
    "delivery to 1,000 streams), resolve (an old long job).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=8.0,
    show_default=True,
    help="Seconds per status-endpoint run.",
)
@click.option(
    "--events",
    type=click.IntRange(min=1000),
    default=1_000_000,
    show_default=True,
    help="Log events in the status benchmark's database.",
)
@click.option(
    "--old-events",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Events of the old long job.",
)
@click.option(
    "--newer-events",
    type=click.IntRange(min=1000),
    default=1_000_000,
    show_default=True,
    help="Events after the old job's (10000000 for the 10M check).",
)
def scale(**options: Any) -> None:
    """Status endpoint vs a control app, idle and live streams, an old long job."""
    from joblog.bench.report import write_in_place

    run_scale_command(**options)
    click.echo(f"wrote {write_in_place(options['out'], 'scale')}")


@bench.command()
@common_options
@click.option(
    "--events",
    default="10m",
    show_default=True,
    help="Events older than the retention, which the prune removes (e.g. 10m, 1m, 200k).",
)
def retention(**options: Any) -> None:
    """Retention on PostgreSQL: partition drop vs DELETE (time, WAL bytes, dead rows), and
    the writers' stall while `joblog db partition` converts a table of the same events.

    Needs room for four copies of the events (10m: about 4 GB each); takes about half an
    hour at 10m on 2 cores. Not part of `all`.
    """
    from joblog.bench.report import write_in_place

    run_retention_command(**options)
    click.echo(f"wrote {write_in_place(options['out'], 'retention')}")


@bench.command()
@common_options
@click.option("--jobs", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--events", default="100k", show_default=True, help="Old events to prune.")
def housekeeping(
    backends: str,
    pg_url: str,
    mariadb_url: str,
    out: Path,
    quick: bool,
    quiet: bool,
    jobs: int,
    events: str,
) -> None:
    """Three `joblog serve` processes on one database: each abandoned job failed once,
    each old event pruned once, and which server did which round (per backend)."""
    from joblog.bench.housekeeping import HousekeepingConfig, run_housekeeping
    from joblog.bench.report import write_in_place

    config = HousekeepingConfig(jobs=jobs, events=_count(events))
    if quick:
        config = HousekeepingConfig(jobs=50, events=5_000, rounds_after=3.0)
    dbs = databases(backends, pg_url, mariadb_url, out, "_housekeeping")
    _run_section(
        out, "housekeeping", dbs, quiet, lambda reporter: run_housekeeping(dbs, config, reporter)
    )
    click.echo(f"wrote {write_in_place(out, 'housekeeping')}")


@bench.command("all")
@common_options
@_sizes_option
@_huge_option
@_keys_option
@click.option("--skip-api", is_flag=True, help="Leave out the status API benchmark.")
@click.option("--skip-topology", is_flag=True, help="Leave out the scale-out benchmark.")
def all_(skip_api: bool, skip_topology: bool, **options: Any) -> None:
    """lookup, ingest, api and topology with their defaults (what `make bench` runs)."""
    base = {k: options[k] for k in ("backends", "pg_url", "mariadb_url", "out", "quick", "quiet")}
    run_lookup_command(**base, sizes=options["sizes"], huge=options["huge"], keys=options["keys"])
    _finish(options["out"])
    run_ingest_command(**base, lines=1_000_000)
    _finish(options["out"])
    if not skip_api:
        run_api_command(**base, duration=8.0)
    _finish(options["out"])
    if not skip_topology:
        run_topology_command(**base, duration=10.0)
        _finish(options["out"])
