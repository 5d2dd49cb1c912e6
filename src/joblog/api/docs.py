"""``/docs``: Swagger UI, served by joblog itself so that it works without internet.

Swagger UI's files come from an installed package made to ship them (``fastapi-offline``,
in the ``server`` extra), never from a CDN and never copied into joblog. The page holds no
inline script (its starter is joblog's ``static/api-docs.js``), so its
Content-Security-Policy allows scripts and styles from this server only, plus ``data:``
images (Swagger UI's stylesheet draws its icons with them).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from joblog.web.render import render

__all__ = ["ASSETS", "DOCS_CSP", "install_docs"]

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
#: The only files ``/docs/assets/{name}`` serves, with their media types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
    "api-docs.js": "text/javascript; charset=utf-8",
}
_OWN = {"api-docs.js"}
_STATIC_DIR = Path(str(resources.files("joblog.web") / "static"))


def _swagger_dir() -> Path | None:
    """Where the installed package keeps Swagger UI's files (None: not installed)."""
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None


def install_docs(app: FastAPI, path: str = "/docs") -> None:
    """Serve Swagger UI for ``app.openapi_url`` at ``path`` (create the app with
    ``docs_url=None`` so that FastAPI's CDN page is not there too)."""
    router = APIRouter(include_in_schema=False)
    swagger_dir = _swagger_dir()
    openapi_url = app.openapi_url or "/openapi.json"

    def docs_page(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        if swagger_dir is None:
            return HTMLResponse(
                "<!doctype html><title>API docs</title><p>Swagger UI needs the "
                "fastapi-offline package: pip install 'joblog[server]'.</p>",
                status_code=503,
            )
        page = render(
            "api_docs.html",
            title=app.title,
            assets=f"{root}{path}/assets",
            openapi_url=f"{root}{openapi_url}",
        )
        return HTMLResponse(
            page, headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"}
        )

    def docs_asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        directory = _STATIC_DIR if name in _OWN else swagger_dir
        if media_type is None or directory is None:
            return Response(status_code=404)
        return FileResponse(
            directory / name, media_type=media_type, headers={"Cache-Control": "no-cache"}
        )

    router.add_api_route(path, docs_page, methods=["GET"], response_model=None)
    router.add_api_route(
        f"{path}/assets/{{name}}", docs_asset, methods=["GET"], response_model=None
    )
    app.include_router(router)
