"""ASGI entry point: /v1/ goes to a lean API handler, everything else to Django's full stack.

Run it with `python manage.py runserver` (daphne's) or `daphne mockllm_site.asgi:application`.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mockllm_site.settings")
site_application = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter  # noqa: E402

from responses_app.handlers import APIHandler, route_http  # noqa: E402

api_application = APIHandler()

application = ProtocolTypeRouter({"http": route_http(api_application, site_application)})
