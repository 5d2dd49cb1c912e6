"""What the numbers were measured on: cores, memory, and every version that matters."""

from __future__ import annotations

import os
import platform
import sqlite3
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from joblog.bench.backends import BenchDatabase

__all__ = ["describe_machine"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _server_version(db: BenchDatabase) -> str:
    # Through the server's maintenance connection: the bench database itself may not exist
    # yet (a section creates it) or any more (a section drops it when done).
    sql = "SHOW server_version" if db.backend == "postgresql" else "SELECT VERSION()"
    try:
        with db.admin() as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            row = cursor.fetchone()
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    return str(row[0]) if row else "?"


def describe_machine(databases: Sequence[BenchDatabase]) -> dict[str, Any]:
    servers = {db.backend: _server_version(db) for db in databases if db.backend != "sqlite"}
    try:
        import psycopg

        pq = f"{psycopg.pq.__impl__} libpq {psycopg.pq.version()}"
    except Exception:  # the driver is optional here
        pq = "?"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": servers.get("postgresql", "-"),
        "mariadb": servers.get("mariadb", "-"),
        "drivers": {
            "SQLAlchemy": _version("sqlalchemy"),
            "psycopg": f"{_version('psycopg')} ({pq})",
            "PyMySQL": _version("pymysql"),
        },
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
