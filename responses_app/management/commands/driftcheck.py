"""`python manage.py driftcheck`: send each recorded request to the upstream again and report what changed
in the answer's shape (canned/drift.py); exit status 1 when anything did."""
from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from responses_app.canned.drift import differences, shape_of
from responses_app.models import RecordedExchange


def upstream_for(exchange: RecordedExchange) -> tuple[str, dict[str, str]]:
    """The URL to send a recorded request to now (the configured upstream, not the one recorded), and
    its headers: those recorded plus the configured key."""
    headers = dict(exchange.request_headers)
    headers["accept-encoding"] = "identity"
    if "anthropic-version" in headers or exchange.path.split("?")[0].rstrip("/").endswith(("/messages",
                                                                                           "/count_tokens")):
        if settings.MOCKLLM_UPSTREAM_ANTHROPIC_KEY:
            headers["x-api-key"] = settings.MOCKLLM_UPSTREAM_ANTHROPIC_KEY
        return settings.MOCKLLM_UPSTREAM_ANTHROPIC + exchange.path, headers
    if settings.MOCKLLM_UPSTREAM_OPENAI_KEY:
        headers["authorization"] = f"Bearer {settings.MOCKLLM_UPSTREAM_OPENAI_KEY}"
    return settings.MOCKLLM_UPSTREAM_OPENAI + exchange.path, headers


class Command(BaseCommand):
    help = (
        "Send each recorded request to the upstream API again (MOCKLLM_UPSTREAM_OPENAI / _ANTHROPIC, with "
        "their _KEY settings) and print what changed in the answer's shape: fields present, event types and "
        "their order, tool names, finish reasons. Ids, text and token counts are not drift. Exits with "
        "status 1 when any answer drifted or could not be fetched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--test-id", default=None, help="only the recordings of this test run")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer")

    def handle(self, *args: Any, test_id: str | None = None, timeout: float = 120.0, **options: Any) -> None:
        exchanges = RecordedExchange.objects.select_related("entry").order_by("id")
        if test_id is not None:
            exchanges = exchanges.filter(entry__test_id=test_id)
        drifted = checked = 0
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            for exchange in exchanges.iterator():
                checked += 1
                url, headers = upstream_for(exchange)
                label = f"entry {exchange.entry_id} ({exchange.entry.options.get('name') or exchange.path})"
                try:
                    answer = client.post(url, content=exchange.request_body.encode(), headers=headers)
                except httpx.HTTPError as exc:
                    drifted += 1
                    self.stdout.write(f"{label}: the upstream could not be reached ({type(exc).__name__})")
                    continue
                streamed = "text/event-stream" in answer.headers.get("content-type", "")
                changes = differences(shape_of(exchange.status, exchange.response_body, exchange.streamed),
                                      shape_of(answer.status_code, answer.text, streamed))
                if changes:
                    drifted += 1
                    self.stdout.write(f"{label}: drifted")
                    for change in changes:
                        self.stdout.write(f"    {change}")
        summary = f"{checked} recording{'s' if checked != 1 else ''} checked, {drifted} drifted"
        if drifted:
            self.stdout.write(summary)
            raise CommandError(summary, returncode=1)
        self.stdout.write(summary + ": the upstream answers in the shapes recorded")
