"""joblog's HTTP API: ``create_app()`` returns the ASGI app ``joblog serve`` runs.

``create_app`` is imported on first use, so the modules that need no server stack
(:mod:`joblog.api.serialize`, the JSON shape the CLI prints too) import without the
``server`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from joblog.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from joblog.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
