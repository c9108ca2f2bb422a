"""The control API: what a test suite needs to set up canned responses and assert on the journal,
over HTTP, without the admin. Served under /control/, with its OpenAPI description at
/control/openapi.json, and answered only for requests bearing MOCKLLM_CONTROL_TOKEN.

Scope: a request is scoped to a test run when it names one, by X-Mock-Test-Id or ?test_id= (the two
must agree). A scoped request reads and changes that run's canned responses and journal entries only;
anything else is a 404 to it. Entries shared by everyone are changed only when the request says whose
they are: ?scenario=NAME (or "scenario" in a posted entry) for a scenario's shared entries, and
?default=true for the default set. The X-Mock-Scenario header alone does not say it: a client may send
it on every request. A DELETE of journal entries must narrow by run, scenario, key name, request id or
a closed time window, or say all=true.

Every input is checked before it reaches the database: a text it cannot hold (NUL) is a 400 naming the
parameter, and test ids and scenario names are printable ASCII (clients.run_name).
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hmac
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.views import APIView

from responses_app.api.clients import SCENARIO_HEADER, SCENARIO_MAX, TEST_ID_HEADER, TEST_ID_MAX, run_name
from responses_app.canned.entries import entry_from_row, parse_entry
from responses_app.canned.fields import EntryError, mapping
from responses_app.api.errors import error_response
from responses_app.team.journal import journal, row_json
from responses_app.models import CannedResponse, JournalEntry, Source
from responses_app.api.body import read_json_body
from responses_app.providers.common import APIError, dumps

logger = logging.getLogger("mockllm.errors")

MAX_LIMIT = 1000
MAX_WAIT_SECONDS = 30.0


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


def _param(request: Request, name: str, default: str = "") -> str:
    value = request.GET.get(name, default)
    if "\x00" in value:
        raise APIError(400, f"`{name}` cannot contain a NUL character (\\u0000): the database cannot hold it.",
                       param=name)
    return value.strip()


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


def _time(request: Request, name: str) -> datetime.datetime | None:
    raw = _param(request, name)
    if not raw:
        return None
    try:
        moment = parse_datetime(raw)
    except ValueError:  # well formed, but no such time (month 13)
        moment = None
    if moment is None:
        raise APIError(400, f"`{name}` must be an ISO 8601 time, such as 2026-01-31T12:00:00Z, not {raw!r}.",
                       param=name)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _agreeing(name: str, values: list[tuple[str, str]]) -> str:
    """The one value the places in `values` ((where, value) pairs) give for `name`; a 400 when two differ."""
    given = [(where, value) for where, value in values if value]
    for where, value in given[1:]:
        if value != given[0][1]:
            raise APIError(400, f"{given[0][0]} says {given[0][1]!r} and {where} says {value!r}: one request speaks "
                                f"for one {name.replace('_', ' ')}. Send one of them, or the same in both.",
                           param=name)
    return given[0][1] if given else ""


@dataclasses.dataclass(frozen=True)
class Scope:
    """Whose data a control request is about (see the module's docstring)."""

    test_id: str = ""
    scenario: str = ""
    scenario_said: bool = False  # by ?scenario= or a posted entry's "scenario", not only X-Mock-Scenario
    default: bool = False  # ?default=true: the default set

    @classmethod
    def of(cls, request: Request, body: dict[str, Any] | None = None, where: str = "") -> Scope:
        """The request's scope; `body`: a posted entry, whose "test_id" and "scenario" count too."""
        body = body or {}
        names, said = {}, False
        for name, header, meta, limit in (("test_id", "X-Mock-Test-Id", TEST_ID_HEADER, TEST_ID_MAX),
                                          ("scenario", "X-Mock-Scenario", SCENARIO_HEADER, SCENARIO_MAX)):
            places = []  # (what the message calls it, the parameter it names, the value)
            if name in body:
                if not isinstance(body[name], str):
                    raise APIError(400, f"`{where}{name}` must be a string.", param=f"{where}{name}")
                places.append((f"the entry's `{name}`", f"{where}{name}", body[name]))
            places.append((f"`{name}`", name, _param(request, name)))
            places.append((header, header, request.META.get(meta, "")))
            checked = [(label, run_name(value, label.strip("`") if label[0] == "`" else label, limit, param=param))
                       for label, param, value in places]
            names[name] = _agreeing(name, checked)
            if name == "scenario":
                said = any(value for label, value in checked if label != header)
        default = _bool(request, "default") is True
        if default and (names["test_id"] or names["scenario"]):
            raise APIError(400, "`default=true` names the default set; it cannot go with a test id or a scenario.",
                           param="default")
        return cls(names["test_id"], names["scenario"], said, default)

    @property
    def set_key(self) -> tuple[str, str] | None:
        """The one set a change applies to, or None when the request has not said which."""
        if self.test_id:
            return (self.scenario, self.test_id)
        if self.scenario and self.scenario_said:
            return (self.scenario, "")
        if self.default:
            return ("", "")
        return None

    def require_said(self) -> None:
        """A change must say whose entries it changes."""
        if self.test_id or self.default or (self.scenario and self.scenario_said):
            return
        if self.scenario:
            raise APIError(400, f"To change scenario {self.scenario!r}'s shared entries, name it with "
                                f"?scenario={self.scenario} (X-Mock-Scenario alone does not say it), or send "
                                "X-Mock-Test-Id to change your test run's entries.", param="scenario")
        raise APIError(400, "Say whose canned responses to change: X-Mock-Test-Id (or ?test_id=) for a test run's, "
                            "?scenario=NAME for a scenario's shared ones, or ?default=true for the default set "
                            "every request falls back to.", param="test_id")

    def describe(self) -> str:
        if self.test_id:
            return f"test run {self.test_id!r}" + (f" (scenario {self.scenario!r})" if self.scenario else "")
        if self.scenario:
            return f"scenario {self.scenario!r}'s shared entries"
        return "the default set" if self.default else "any set"

    def rows(self) -> QuerySet:
        """The canned responses in this scope: a run's (within its scenario, if named), a scenario's
        shared ones, the default set's; every one for a request that names no scope."""
        rows = CannedResponse.objects.all()
        if self.test_id:
            rows = rows.filter(test_id=self.test_id)
            return rows.filter(scenario=self.scenario) if self.scenario else rows
        if self.scenario:
            return rows.filter(test_id="", scenario=self.scenario)
        if self.default:
            return rows.filter(test_id="", scenario="")
        return rows


# ---- journal ---------------------------------------------------------------------------------

JOURNAL_FILTERS = ("model", "provider", "endpoint", "api_key_name", "request_id")
# What narrows a DELETE of journal entries to someone's; with none of them it needs all=true.
NARROWING = ("a test run (X-Mock-Test-Id or ?test_id=), ?scenario=, ?api_key_name=, ?request_id=, or both ?since= "
             "and ?until=")


def journal_narrowed(request: Request, scope: Scope) -> bool:
    """Whether a DELETE narrows to someone's entries (NARROWING). after_id=0, a model or a status do not."""
    if scope.test_id or (scope.scenario and scope.scenario_said):
        return True
    if any(_param(request, name) for name in ("api_key_name", "request_id")):
        return True
    return bool(_param(request, "since") and _param(request, "until"))


def journal_filter(request: Request, scope: Scope) -> QuerySet:
    rows = JournalEntry.objects.all()
    if scope.test_id:
        rows = rows.filter(test_id=scope.test_id)
    if scope.scenario and scope.scenario_said:  # the journal is filtered by ?scenario=, not by the header
        rows = rows.filter(scenario=scope.scenario)
    for name in JOURNAL_FILTERS:
        value = _param(request, name)
        if value:
            rows = rows.filter(**{name: value})
    if _param(request, "status"):
        rows = rows.filter(status=_int(request, "status", 0, minimum=100, maximum=599))
    matched = _bool(request, "matched")
    if matched is not None:
        rows = rows.filter(matched=matched)
    since, until = _time(request, "since"), _time(request, "until")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    after = _int(request, "after_id", 0)
    if after:
        rows = rows.filter(id__gt=after)
    return rows


class JournalQuery:
    """A GET of the journal, its parameters checked before any query runs."""

    def __init__(self, request: HttpRequest) -> None:
        self.limit = _int(request, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        self.wait = float(_int(request, "wait", 0, minimum=0, maximum=int(MAX_WAIT_SECONDS)))
        self.at_least = _int(request, "min_count", 1 if self.wait else 0, minimum=0, maximum=10_000_000)
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
        if not journal_narrowed(request, scope) and _bool(request, "all") is not True:
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


# ---- canned responses --------------------------------------------------------------------------

def response_json(row: CannedResponse) -> dict[str, Any]:
    return {
        "id": row.id, "prompt": row.prompt, "answer": row.answer, "options": row.options,
        "entry": entry_from_row(row.prompt, row.answer, row.options or {}),
        "scenario": row.scenario, "test_id": row.test_id, "source": row.source,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
    }


def nul_at(value: Any, path: str = "") -> str | None:
    """Where the first NUL character in a JSON value is (a dotted path, [i] for list items), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, list):
        items = enumerate(value)
        return next((found for i, item in items if (found := nul_at(item, f"{path}[{i}]")) is not None), None)
    if isinstance(value, dict):
        if any("\x00" in key for key in value):
            return path
        return next((found for key, item in value.items()
                     if (found := nul_at(item, f"{path}.{key}" if path else key)) is not None), None)
    return None


def new_row(request: Request, body: Any, where: str = "") -> CannedResponse:
    """A posted entry as the row it becomes (not saved), in the set its scope says; a 400 naming the field
    (prefixed by `where`, such as "[3]." in a list) when it is not a valid entry."""
    if not isinstance(body, dict):
        raise APIError(400, f"An entry must be a JSON object, such as {{\"match\": \"hello\", \"response\": "
                            f"\"Hi!\"}}{'; ' + where.rstrip('.') + ' is not' if where else ''}.",
                       param=where.rstrip(".") or None)
    found = nul_at(body)
    if found is not None:
        raise APIError(400, f"`{where}{found}` contains a NUL character (\\u0000), which the database cannot hold; "
                            "a canned entry is stored as given, so remove it.", param=f"{where}{found}")
    scope = Scope.of(request, body, where)
    entry = {key: value for key, value in body.items() if key not in ("test_id", "scenario")}
    try:
        prompt, answer, options = parse_entry(mapping(entry, "entry"))
    except EntryError as exc:
        raise APIError(400, f"{where}{exc.message}. An entry has the responses file's list form, for example "
                            '{"match": "hello", "response": "Hi!"}.', param=f"{where}{exc.field}" if exc.field
                       else where.rstrip(".") or None) from None
    scope.require_said()
    scenario, test_id = scope.set_key
    return CannedResponse(prompt=prompt, answer=answer, options=options, source=Source.ADMIN, scenario=scenario,
                          test_id=test_id)


def _validated(row: CannedResponse, where: str = "") -> CannedResponse:
    try:
        row.full_clean(exclude=["key_digest"])
    except ValidationError as exc:
        duplicate = any(error.code == "duplicate_prompt" for error in exc.error_dict.get("prompt", ()))
        messages = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        fields = [field for field in exc.message_dict if field != "__all__"]
        raise APIError(409 if duplicate else 400, f"{where}{messages}",
                       param=f"{where}{fields[0]}" if len(fields) == 1 else where.rstrip(".") or None) from None
    return row


class CannedResponsesView(ControlView):
    """GET: list canned responses (of the request's scope; every one for a request without one);
    POST: add one to a test run's set, a named scenario's or the default set (?default=true);
    DELETE: a test run's entries, a scenario's shared entries (?scenario=), or the default set's (?default=true)."""

    def get(self, request: Request) -> HttpResponse:
        limit = _int(request, "limit", 100, minimum=1, maximum=MAX_LIMIT)
        rows = Scope.of(request).rows()
        after = _int(request, "after_id", 0)
        if after:
            rows = rows.filter(id__gt=after)
        page = list(rows.order_by("id")[:limit + 1])
        return json_response({"object": "list", "data": [response_json(row) for row in page[:limit]],
                              "has_more": len(page) > limit})

    def post(self, request: Request) -> HttpResponse:
        row = _validated(new_row(request, read_json_body(request)))
        row.save()
        return json_response(response_json(row), status=201)

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


def unknown_control_route(request: HttpRequest, path: str = "") -> HttpResponse:
    return error_response(request, 404, f"Unknown control API URL: {request.method} {request.path}. "
                                        "See /control/openapi.json.", code="unknown_url")
