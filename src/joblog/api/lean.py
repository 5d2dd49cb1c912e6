"""A route for the hot polling endpoints that skips FastAPI's per-request machinery.

:class:`LeanRoute` keeps everything FastAPI derives from the endpoint's signature for
OpenAPI (path parameters, responses, the read routes' bearer-scheme declaration), but
its handler calls the endpoint directly with the request and the path parameters: no
dependency solving, no parameter validation models, no response model. That suits
endpoints whose only inputs are a ``{...:path}`` string and the request, and which
build their own :class:`~starlette.responses.Response`: the status routes every GUI polls.
Authentication and input checks happen before routing in the app's middleware, as for
every route.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["LeanRoute"]


class LeanRoute(APIRoute):
    """An APIRoute whose endpoint is ``async def f(<path params>, request) -> Response``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handler
