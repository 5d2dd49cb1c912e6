"""The Jinja2 environment of the dashboard and the small formatting filters it uses.

Autoescape is on for every template: job names, IDs, messages and attrs come from
producers the dashboard does not control.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jinja2

from joblog.web.errors import ERROR_RULES

__all__ = ["environment", "format_duration", "render"]


def format_duration(seconds: float | None) -> str:
    """``None`` -> an em dash; else a short human duration: 4.2s, 1m 05s, 2h 03m."""
    if seconds is None:
        return "—"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_eta(seconds: float | None, terminal: bool) -> str:
    if terminal:
        return "done"
    if seconds is None:
        return "estimating…"
    if seconds < 1:
        return "any moment now"
    return f"about {format_duration(seconds)} left"


def iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def clock(value: datetime | None) -> str:
    """UTC wall-clock time for server-rendered timestamps (the browser redraws them local)."""
    return value.strftime("%H:%M:%S") if value is not None else ""


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def attrs_without_logger(attrs: dict[str, Any] | None) -> dict[str, Any]:
    """An event's attrs minus ``logger`` (the logger name is shown on its own)."""
    return {k: v for k, v in (attrs or {}).items() if k != "logger"}


def attrs_preview(attrs: dict[str, Any], limit: int = 140) -> str:
    """``key=value`` pairs on one line, cut at ``limit`` characters."""
    text = " ".join(
        f"{k}={v if isinstance(v, str | int | float) else json.dumps(v, default=str)}"
        for k, v in attrs.items()
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _build() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("joblog.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["iso"] = iso
    env.filters["clock"] = clock
    env.filters["pretty_json"] = pretty_json
    env.globals["format_eta"] = format_eta
    env.globals["attrs_without_logger"] = attrs_without_logger
    env.globals["attrs_preview"] = attrs_preview
    env.globals["error_rules"] = [list(rule) for rule in ERROR_RULES]
    return env


environment = _build()


def render(template: str, **context: Any) -> str:
    """``template`` filled; ``viewer`` (the top bar's session or sign-in link) may be left out."""
    return environment.get_template(template).render(**{"viewer": None, **context})
