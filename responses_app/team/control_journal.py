"""The control API's journal endpoints: GET /control/journal (with ?wait=, without holding a thread or a
database connection while it waits) and DELETE /control/journal (narrowed to someone's entries)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request

from responses_app.api.errors import error_response
from responses_app.models import JournalEntry
from responses_app.providers.common import APIError
from responses_app.team.control import MAX_LIMIT, ControlView, check_token, json_response
from responses_app.team.journal import journal, row_json
from responses_app.team.scope import Scope, bool_param, int_param, param, time_param

logger = logging.getLogger("mockllm.errors")

MAX_WAIT_SECONDS = 30.0


JOURNAL_FILTERS = ("model", "provider", "endpoint", "api_key_name", "request_id")
# What narrows a DELETE of journal entries to someone's; with none of them it needs all=true.
NARROWING = ("a test run (X-Mock-Test-Id or ?test_id=), ?scenario=, ?api_key_name=, ?request_id=, or both ?since= "
             "and ?until=")


def journal_narrowed(request: Request, scope: Scope) -> bool:
    """Whether a DELETE narrows to someone's entries (NARROWING). after_id=0, a model or a status do not."""
    if scope.test_id or (scope.scenario and scope.scenario_said):
        return True
    if any(param(request, name) for name in ("api_key_name", "request_id")):
        return True
    return bool(param(request, "since") and param(request, "until"))


def journal_filter(request: Request, scope: Scope) -> QuerySet:
    rows = JournalEntry.objects.all()
    if scope.test_id:
        rows = rows.filter(test_id=scope.test_id)
    if scope.scenario and scope.scenario_said:  # the journal is filtered by ?scenario=, not by the header
        rows = rows.filter(scenario=scope.scenario)
    for name in JOURNAL_FILTERS:
        value = param(request, name)
        if value:
            rows = rows.filter(**{name: value})
    if param(request, "status"):
        rows = rows.filter(status=int_param(request, "status", 0, minimum=100, maximum=599))
    matched = bool_param(request, "matched")
    if matched is not None:
        rows = rows.filter(matched=matched)
    since, until = time_param(request, "since"), time_param(request, "until")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    after = int_param(request, "after_id", 0)
    if after:
        rows = rows.filter(id__gt=after)
    return rows


class JournalQuery:
    """A GET of the journal, its parameters checked before any query runs."""

    def __init__(self, request: HttpRequest) -> None:
        self.limit = int_param(request, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        self.wait = float(int_param(request, "wait", 0, minimum=0, maximum=int(MAX_WAIT_SECONDS)))
        self.at_least = int_param(request, "min_count", 1 if self.wait else 0, minimum=0, maximum=10_000_000)
        self.rows = journal_filter(request, Scope.of(request))

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The answer, once `at_least` entries match or the deadline has passed; None before. Runs in a
        worker thread and gives its database connection back before it returns."""
        try:
            journal.flush()  # this process's queue; other processes hand theirs over every flush interval
            total = self.rows.count()
            if total < self.at_least and time.monotonic() < deadline:
                return None
            page = list(self.rows.order_by("-id")[:self.limit])
            return {"object": "list", "data": [row_json(row) for row in page], "has_more": total > len(page),
                    "total": total}
        finally:
            connections.close_all()


class JournalView(ControlView):
    """DELETE: remove the entries matching the filters (narrowed to someone's, or all=true). GET is
    answered by journal_view, without a thread."""

    def delete(self, request: Request) -> HttpResponse:
        scope = Scope.of(request)
        rows = journal_filter(request, scope)
        if not journal_narrowed(request, scope) and bool_param(request, "all") is not True:
            raise APIError(400, f"Say whose entries to delete: {NARROWING}; other filters (after_id, model, status, "
                                "...) only narrow those. Or ?all=true to delete every run's entries.", param="test_id")
        journal.flush()
        deleted = rows.delete()[0]
        return json_response({"deleted": deleted})


_journal_view = JournalView.as_view()


@csrf_exempt
async def journal_view(request: HttpRequest) -> HttpResponse:
    """/control/journal. GET: the newest entries matching the filters; with ?wait=, once `min_count` match.

    The GET runs on the event loop: a wait sleeps with asyncio, and each look at the journal is a short
    query in a worker thread that gives its database connection back at once. So open waits hold no
    thread and no connection: a dozen of them cannot starve the pool that every other control request
    and index rebuild of this process draws from (as a sleeping sync view did). Other methods go to
    JournalView."""
    if request.method != "GET":
        return await sync_to_async(_journal_view)(request)
    try:
        check_token(request)
        query = JournalQuery(request)
        started = time.monotonic()
        deadline = started + query.wait
        while True:
            answer = await sync_to_async(query.read, thread_sensitive=False)(deadline)
            if answer is not None:
                return json_response(answer)
            pause = 0.05 if time.monotonic() - started < 2 else 0.25  # new entries come within a second or so
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    except APIError as exc:
        return error_response(request, exc.status_code, exc.message, param=exc.param, code=exc.code)
    except Exception:
        logger.exception("unexpected error while answering", extra={"path": request.path})
        return error_response(request, 500, "The server had an error while processing your request.")
