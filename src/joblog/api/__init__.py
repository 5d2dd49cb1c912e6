"""joblog's HTTP API: ``create_app()`` returns the ASGI app ``joblog serve`` runs."""

from __future__ import annotations

from joblog.api.app import create_app

__all__ = ["create_app"]
