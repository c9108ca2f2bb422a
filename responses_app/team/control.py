"""The control API: what a test suite needs to set up canned responses and assert on the journal,
over HTTP, without the admin. Served under /control/, with its OpenAPI description at
/control/openapi.json, and answered only for requests bearing MOCKLLM_CONTROL_TOKEN. This module
holds the token check and the canned responses' endpoints; the journal's are in control_journal.py,
and whose data a request reaches, and how its parameters are checked, in scope.py.
"""
from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from responses_app.api.body import read_json_body
from responses_app.api.errors import error_response
from responses_app.canned.entries import entry_digest, entry_from_row, parse_entry
from responses_app.canned.fields import EntryError, mapping
from responses_app.models import CannedResponse, RecordingRun, SetVersion, Source
from responses_app.providers.common import APIError, dumps
from responses_app.team.scope import Scope, int_param, nul_at

MAX_LIMIT = 1000


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(data), status=status, content_type="application/json")


def check_token(request: HttpRequest | Request) -> None:
    """A 403 while the control API is off, a 401 unless the request bears its token."""
    expected = settings.MOCKLLM_CONTROL_TOKEN
    if not expected:
        raise APIError(403, "The control API is off: set MOCKLLM_CONTROL_TOKEN on the server to turn it on.",
                       code="control_api_off")
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    given = authorization[7:].strip() if authorization[:7].lower() == "bearer " else \
        request.META.get("HTTP_X_MOCK_CONTROL_TOKEN", "").strip()
    if not given:
        raise APIError(401, "The control API needs its token: send `Authorization: Bearer TOKEN` "
                            "(the server's MOCKLLM_CONTROL_TOKEN).", code="missing_token")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")):
        raise APIError(401, "The control token is wrong.", code="invalid_token")


class ControlView(APIView):
    """Checks the control token before any handler runs."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        check_token(request)


# ---- canned responses --------------------------------------------------------------------------

def response_json(row: CannedResponse) -> dict[str, Any]:
    return {
        "id": row.id, "prompt": row.prompt, "answer": row.answer, "options": row.options,
        "entry": entry_from_row(row.prompt, row.answer, row.options or {}),
        "scenario": row.scenario, "test_id": row.test_id, "source": row.source,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
    }


MAX_ENTRIES_PER_POST = 10_000
DUPLICATE = ("Another canned response of this set already has exactly this prompt and matching options; "
             "edit that one instead.")


def new_row(request: Request, body: Any, where: str = "") -> CannedResponse:
    """A posted entry as the (unsaved) row it becomes, in the set its scope says, its fields checked;
    a 400 naming the field when it is not a valid entry. `where` is the entry's place in a posted list
    ("[3]."), put before the field in `param` and before the message."""
    label = f"{where.rstrip('.')}: " if where else ""
    if not isinstance(body, dict):
        raise APIError(400, f"{label}an entry must be a JSON object, such as {{\"match\": \"hello\", \"response\": "
                            "\"Hi!\"}.", param=where.rstrip(".") or None)
    found = nul_at(body)
    if found is not None:
        raise APIError(400, f"`{where}{found}` contains a NUL character (\\u0000), which the database cannot hold; "
                            "a canned entry is stored as given, so remove it.", param=f"{where}{found}")
    try:
        scope = Scope.of(request, body, where)
    except APIError as exc:
        raise APIError(exc.status_code, label + exc.message, param=exc.param) from None
    entry = {key: value for key, value in body.items() if key not in ("test_id", "scenario")}
    try:
        prompt, answer, options = parse_entry(mapping(entry, "entry"))
    except EntryError as exc:
        raise APIError(400, f"{label}{exc.message}. An entry has the responses file's list form, for example "
                            '{"match": "hello", "response": "Hi!"}.', param=f"{where}{exc.field}" if exc.field
                       else where.rstrip(".") or None) from None
    try:
        scope.require_said()
    except APIError as exc:
        raise APIError(exc.status_code, label + exc.message, param=exc.param) from None
    scenario, test_id = scope.set_key
    row = CannedResponse(prompt=prompt, answer=answer, options=options, source=Source.ADMIN, scenario=scenario,
                         test_id=test_id)
    try:
        row.clean_fields(exclude=["key_digest"])
        row.clean_options()
    except ValidationError as exc:
        messages = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        fields = [field for field in exc.message_dict if field != "__all__"]
        raise APIError(400, f"{label}{messages}",
                       param=f"{where}{fields[0]}" if len(fields) == 1 else where.rstrip(".") or None) from None
    row.key_digest = entry_digest(row.prompt, row.options)
    return row


def add_rows(rows: list[CannedResponse], wheres: list[str]) -> None:
    """Store new rows as one change: one transaction, one version bump (an addition: every server process
    reads just these rows). A 409 naming the entry whose prompt its set already has, or another entry
    of the same post has; then nothing is stored."""
    first: dict[tuple[str, str, str], str] = {}
    for row, where in zip(rows, wheres, strict=True):
        seen = first.setdefault((row.scenario, row.test_id, row.key_digest), where)
        if seen != where:
            raise APIError(409, f"{where.rstrip('.')}: {seen.rstrip('.')} has exactly this prompt and matching "
                                "options for the same set; give it once.", param=f"{where}match")
    with transaction.atomic():
        SetVersion.bump({row.set_key for row in rows}, added_only=True)  # first: the rows' ids then follow it
        by_set: dict[tuple[str, str], list[int]] = {}
        for i, row in enumerate(rows):
            by_set.setdefault(row.set_key, []).append(i)
        for (scenario, test_id), members in by_set.items():
            for start in range(0, len(members), 500):
                part = members[start:start + 500]
                stored = set(CannedResponse.objects.filter(
                    scenario=scenario, test_id=test_id, key_digest__in=[rows[i].key_digest for i in part],
                ).values_list("key_digest", flat=True))
                clash = next((i for i in part if rows[i].key_digest in stored), None)
                if clash is not None:
                    where = wheres[clash]
                    raise APIError(409, f"{where.rstrip('.') + ': ' if where else ''}{DUPLICATE}",
                                   param=f"{where}match")
        try:
            with transaction.atomic():
                CannedResponse.objects.bulk_create(rows, batch_size=500)
        except IntegrityError:
            raise APIError(409, f"{DUPLICATE} (It was added by another request at the same time.)",
                           param="match") from None


class CannedResponsesView(ControlView):
    """GET: list canned responses (of the request's scope; every one for a request without one);
    POST: add one entry, or a list of entries as one change (one transaction, one version bump; all or
    nothing), to a test run's set, a named scenario's or the default set (?default=true);
    DELETE: a test run's entries, a scenario's shared entries (?scenario=), or the default set's (?default=true)."""

    def get(self, request: Request) -> HttpResponse:
        limit = int_param(request, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        rows = Scope.of(request).rows()
        after = int_param(request, "after_id", 0)
        if after:
            rows = rows.filter(id__gt=after)
        page = list(rows.order_by("id")[:limit + 1])
        return json_response({"object": "list", "data": [response_json(row) for row in page[:limit]],
                              "has_more": len(page) > limit})

    def post(self, request: Request) -> HttpResponse:
        body = read_json_body(request, lists=True)
        if isinstance(body, dict):
            row = new_row(request, body)
            add_rows([row], [""])
            return json_response(response_json(row), status=201)
        if not body or len(body) > MAX_ENTRIES_PER_POST:
            raise APIError(400, f"A list of entries holds 1 to {MAX_ENTRIES_PER_POST:,}; this one holds {len(body):,}.")
        wheres = [f"[{i}]." for i in range(len(body))]
        rows = [new_row(request, item, where) for item, where in zip(body, wheres, strict=True)]
        add_rows(rows, wheres)
        return json_response([response_json(row) for row in rows], status=201)

    def delete(self, request: Request) -> HttpResponse:
        scope = Scope.of(request)
        scope.require_said()
        with transaction.atomic():  # a finished test run leaves no set behind
            deleted = scope.rows().delete()[0]
        return json_response({"deleted": deleted})


class CannedResponseView(ControlView):
    """GET or DELETE one canned response. A request scoped to a test run reaches that run's entries only
    (404 for any other); a DELETE must say the entry's scope: its run, ?scenario= or ?default=true."""

    def _row(self, request: Request, pk: int, *, change: bool) -> CannedResponse:
        scope = Scope.of(request)
        if change:
            scope.require_said()
        row = scope.rows().filter(pk=pk).first()
        if row is None:
            raise APIError(404, f"There is no canned response {pk}"
                                f"{' in ' + scope.describe() if scope.set_key or scope.test_id else ''}.",
                           code="not_found")
        return row

    def get(self, request: Request, pk: int) -> HttpResponse:
        return json_response(response_json(self._row(request, pk, change=False)))

    def delete(self, request: Request, pk: int) -> HttpResponse:
        self._row(request, pk, change=True).delete()
        return HttpResponse(status=204)


RECORD_MODES = ("off", "miss", "all")


class RecordModeView(ControlView):
    """GET, PUT or DELETE a test run's record mode (docs/record-and-replay.md): `{"mode": "miss"}` makes the
    run's requests that no entry answers go upstream and be recorded into the run's own set; "all"
    forwards and records every request of the run; "off" (or DELETE) ends it. The run is named by
    X-Mock-Test-Id or ?test_id=; where requests go is the server's setting, never the request's."""

    @staticmethod
    def _test_id(request: Request) -> str:
        test_id = Scope.of(request).test_id
        if not test_id:
            raise APIError(400, "Record mode is set per test run: send X-Mock-Test-Id (or ?test_id=).",
                           param="test_id")
        return test_id

    @staticmethod
    def _answer(test_id: str) -> HttpResponse:
        mode = RecordingRun.objects.filter(test_id=test_id).values_list("mode", flat=True).first()
        return json_response({"test_id": test_id, "mode": mode or "off"})

    def get(self, request: Request) -> HttpResponse:
        return self._answer(self._test_id(request))

    def put(self, request: Request) -> HttpResponse:
        test_id = self._test_id(request)
        body = read_json_body(request)
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in RECORD_MODES:
            raise APIError(400, "`mode` must be one of: off, miss, all.", param="mode")
        with transaction.atomic():
            run = RecordingRun.objects.filter(test_id=test_id).first()
            if mode == "off":
                if run is not None:
                    run.delete()
            elif run is None:
                RecordingRun(test_id=test_id, mode=mode).save()
            elif run.mode != mode:
                run.mode = mode
                run.save()
        return self._answer(test_id)

    def delete(self, request: Request) -> HttpResponse:
        test_id = self._test_id(request)
        for run in RecordingRun.objects.filter(test_id=test_id):
            run.delete()
        return self._answer(test_id)


def unknown_control_route(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, 404, f"Unknown control API URL: {request.method} {request.path}. "
                                        "See /control/openapi.json.", code="unknown_url")
