"""ASGI entry point: /v1/ goes to a lean API handler, everything else to Django's full stack.

Run it with `python manage.py runserver` (daphne's), `daphne mockllm_site.asgi:application`, or, for a
shared deployment, `uvicorn mockllm_site.asgi:application --workers N` (see the README).
"""
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mockllm_site.settings")
site_application = get_asgi_application()  # sets Django up before the imports below

import logging  # noqa: E402

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from responses_app.api import daphne_patch  # noqa: E402
from responses_app.api.handler import APIHandler, route_http  # noqa: E402
from responses_app.api.sse import QuietStreamAborted  # noqa: E402
from responses_app.canned.watcher import start_watcher  # noqa: E402
from responses_app.team.redaction import RedactArguments  # noqa: E402

daphne_patch.install()
for server_logger in ("daphne.server", "uvicorn.error"):
    logging.getLogger(server_logger).addFilter(QuietStreamAborted())
logging.getLogger("uvicorn.access").addFilter(RedactArguments())  # a Gemini key may be in a URL's query
api_application = APIHandler()

application = ProtocolTypeRouter({"http": route_http(api_application, site_application)})


def _hot_reload_wanted() -> bool:
    if settings.MOCKLLM_HOT_RELOAD is not None:
        return settings.MOCKLLM_HOT_RELOAD
    # runserver imports this module only in the process that serves, never in the autoreloader's parent.
    return len(sys.argv) > 1 and sys.argv[1] == "runserver"


if _hot_reload_wanted():
    start_watcher()
