"""The ASGI handler that serves /v1/ with its own short middleware chain."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test.utils import override_settings

from .index import response_index

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[Any]]


class APIHandler(ASGIHandler):
    """Django's ASGI handler, built from MOCKLLM_API_MIDDLEWARE instead of MIDDLEWARE.

    On its first request it starts this process's index poller, so only processes that serve the
    API poll (never `migrate`, the test runner or runserver's autoreloader).
    """

    def __init__(self) -> None:
        super().__init__()
        self._polling = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not self._polling:
            self._polling = True
            response_index.start_polling(settings.MOCKLLM_INDEX_POLL_SECONDS)
        await super().__call__(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE while it builds the chain; this runs once, at start-up.
        with override_settings(MIDDLEWARE=settings.MOCKLLM_API_MIDDLEWARE):
            super().load_middleware(is_async)


def route_http(api: ASGIApp, site: ASGIApp) -> ASGIApp:
    """Send /v1 and /v1/... to `api`, everything else to `site`."""

    async def app(scope: dict, receive: Any, send: Any) -> Any:
        path = scope.get("path", "")
        if path.startswith("/v1/") or path == "/v1":
            return await api(scope, receive, send)
        return await site(scope, receive, send)

    return app
