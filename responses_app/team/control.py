"""The control API: what a test suite needs to set up canned responses and assert on the journal,
over HTTP, without the admin. Served under /control/, with its OpenAPI description at
/control/openapi.json, and answered only for requests bearing MOCKLLM_CONTROL_TOKEN."""
from __future__ import annotations

import datetime
import hmac
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_datetime
from rest_framework.request import Request
from rest_framework.views import APIView

from responses_app.api.body import read_json_body
from responses_app.api.clients import SCENARIO_HEADER, TEST_ID_HEADER
from responses_app.api.errors import error_response
from responses_app.canned.entries import entry_from_row, parse_entry
from responses_app.canned.fields import EntryError, mapping
from responses_app.models import CannedResponse, JournalEntry, Source
from responses_app.providers.common import APIError, dumps
from responses_app.team.journal import journal, row_json

MAX_LIMIT = 1000
MAX_WAIT_SECONDS = 30.0


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(data), status=status, content_type="application/json")


class ControlView(APIView):
    """Checks the control token before any handler runs."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        expected = settings.MOCKLLM_CONTROL_TOKEN
        if not expected:
            raise APIError(403, "The control API is off: set MOCKLLM_CONTROL_TOKEN on the server to turn it on.",
                           code="control_api_off")
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        given = authorization[7:].strip() if authorization[:7].lower() == "bearer " else \
            request.META.get("HTTP_X_MOCK_CONTROL_TOKEN", "")
        if not given:
            raise APIError(401, "The control API needs its token: send `Authorization: Bearer TOKEN` "
                                "(the server's MOCKLLM_CONTROL_TOKEN).", code="missing_token")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")):
            raise APIError(401, "The control token is wrong.", code="invalid_token")


def _param(request: Request, name: str, default: str = "") -> str:
    return request.query_params.get(name, default).strip()


def _int(request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = _param(request, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, f"`{name}` must be a whole number, not {raw!r}.", param=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise APIError(400, f"`{name}` must be between {minimum} and {maximum}.", param=name)
    return value


def _bool(request: Request, name: str) -> bool | None:
    raw = _param(request, name).lower()
    if not raw:
        return None
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise APIError(400, f"`{name}` must be true or false, not {raw!r}.", param=name)


def _test_id(request: Request) -> str:
    return _param(request, "test_id") or request.META.get(TEST_ID_HEADER, "").strip()


# ---- journal ---------------------------------------------------------------------------------

JOURNAL_FILTERS = ("model", "provider", "endpoint", "scenario", "api_key_name", "request_id")


def journal_filtered(request: Request) -> bool:
    """Whether the request names any filter (a DELETE without one must say all=true)."""
    return bool(_test_id(request)) or any(_param(request, name) for name in
                                          (*JOURNAL_FILTERS, "status", "matched", "since", "after_id"))


def journal_filter(request: Request) -> QuerySet:
    rows = JournalEntry.objects.all()
    test_id = _test_id(request)
    if test_id:
        rows = rows.filter(test_id=test_id)
    for name in JOURNAL_FILTERS:
        value = _param(request, name)
        if value:
            rows = rows.filter(**{name: value})
    if _param(request, "status"):
        rows = rows.filter(status=_int(request, "status", 0, minimum=100, maximum=599))
    matched = _bool(request, "matched")
    if matched is not None:
        rows = rows.filter(matched=matched)
    since = _param(request, "since")
    if since:
        moment = parse_datetime(since)
        if moment is None:
            raise APIError(400, f"`since` must be an ISO 8601 time, such as 2026-01-31T12:00:00Z, not {since!r}.",
                           param="since")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        rows = rows.filter(created_at__gte=moment)
    after = _int(request, "after_id", 0)
    if after:
        rows = rows.filter(id__gt=after)
    return rows


class JournalView(ControlView):
    """GET: the newest journal entries matching the filters; DELETE: remove them."""

    def get(self, request: Request) -> HttpResponse:
        limit = _int(request, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        wait = float(_int(request, "wait", 0, minimum=0, maximum=int(MAX_WAIT_SECONDS)))
        at_least = _int(request, "min_count", 1 if wait else 0, minimum=0, maximum=10_000_000)
        deadline = time.monotonic() + wait
        while True:
            journal.flush()  # this process's queue; other processes write theirs every flush interval
            rows = journal_filter(request)
            total = rows.count()
            if total >= at_least or time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        page = list(rows.order_by("-id")[:limit])
        return json_response({"object": "list", "data": [row_json(row) for row in page],
                              "has_more": total > len(page), "total": total})

    def delete(self, request: Request) -> HttpResponse:
        rows = journal_filter(request)
        if not journal_filtered(request) and _bool(request, "all") is not True:
            raise APIError(400, "Say which entries to delete (for example ?test_id=...), or ?all=true for every one.",
                           param="test_id")
        journal.flush()
        deleted = rows.delete()[0]
        return json_response({"deleted": deleted})


# ---- canned responses --------------------------------------------------------------------------

def response_json(row: CannedResponse) -> dict[str, Any]:
    return {
        "id": row.id, "prompt": row.prompt, "answer": row.answer, "options": row.options,
        "entry": entry_from_row(row.prompt, row.answer, row.options or {}),
        "scenario": row.scenario, "test_id": row.test_id, "source": row.source,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
    }


def _set_filter(request: Request) -> QuerySet:
    rows = CannedResponse.objects.all()
    test_id = _test_id(request)
    scenario = _param(request, "scenario") or request.META.get(SCENARIO_HEADER, "").strip()
    if test_id:
        rows = rows.filter(test_id=test_id)
    if scenario:
        rows = rows.filter(scenario=scenario)
    return rows


class CannedResponsesView(ControlView):
    """GET: list canned responses (of a test run with ?test_id=); POST: add one; DELETE: a test run's or scenario's."""

    def get(self, request: Request) -> HttpResponse:
        limit = _int(request, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        rows = _set_filter(request)
        after = _int(request, "after_id", 0)
        if after:
            rows = rows.filter(id__gt=after)
        page = list(rows.order_by("id")[:limit + 1])
        return json_response({"object": "list", "data": [response_json(row) for row in page[:limit]],
                              "has_more": len(page) > limit})

    def post(self, request: Request) -> HttpResponse:
        body = read_json_body(request)
        entry = dict(body)
        scope = {"test_id": str(entry.pop("test_id", "") or request.META.get(TEST_ID_HEADER, "")).strip(),
                 "scenario": str(entry.pop("scenario", "") or request.META.get(SCENARIO_HEADER, "")).strip()}
        try:
            prompt, answer, options = parse_entry(mapping(entry, "entry"))
        except EntryError as exc:
            raise APIError(400, f"{exc.message}. An entry has the responses file's list form, for example "
                                '{"match": "hello", "response": "Hi!"}.', param=exc.field or None) from None
        row = CannedResponse(prompt=prompt, answer=answer, options=options, source=Source.ADMIN, **scope)
        try:
            row.full_clean(exclude=["key_digest"])
        except ValidationError as exc:
            duplicate = any(error.code == "duplicate_prompt" for error in exc.error_dict.get("prompt", ()))
            messages = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
            raise APIError(409 if duplicate else 400, messages) from None
        row.save()
        return json_response(response_json(row), status=201)

    def delete(self, request: Request) -> HttpResponse:
        test_id = _test_id(request)
        scenario = _param(request, "scenario")
        if not test_id and not scenario:
            raise APIError(400, "Say whose entries to delete: ?test_id=... (or X-Mock-Test-Id) or ?scenario=...; "
                                "single entries are deleted at /control/responses/{id}.", param="test_id")
        with transaction.atomic():  # a finished test run leaves no set behind
            deleted = _set_filter(request).delete()[0]
        return json_response({"deleted": deleted})


class CannedResponseView(ControlView):
    """GET or DELETE one canned response."""

    def _row(self, pk: int) -> CannedResponse:
        row = CannedResponse.objects.filter(pk=pk).first()
        if row is None:
            raise APIError(404, f"There is no canned response {pk}.", code="not_found")
        return row

    def get(self, request: Request, pk: int) -> HttpResponse:
        return json_response(response_json(self._row(pk)))

    def delete(self, request: Request, pk: int) -> HttpResponse:
        self._row(pk).delete()
        return HttpResponse(status=204)


def unknown_control_route(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, 404, f"Unknown control API URL: {request.method} {request.path}. "
                                        "See /control/openapi.json.", code="unknown_url")
