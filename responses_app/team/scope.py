"""Whose data a control request is about, and its parameters, checked before they reach the database.

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

import dataclasses
import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime

from responses_app.api.clients import SCENARIO_HEADER, SCENARIO_MAX, TEST_ID_HEADER, TEST_ID_MAX, run_name
from responses_app.models import CannedResponse
from responses_app.providers.common import APIError


def param(request: HttpRequest, name: str, default: str = "") -> str:
    value = request.GET.get(name, default)
    if "\x00" in value:
        raise APIError(400, f"`{name}` cannot contain a NUL character (\\u0000): the database cannot hold it.",
                       param=name)
    return value.strip()


def int_param(request: HttpRequest, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = param(request, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(400, f"`{name}` must be a whole number, not {raw!r}.", param=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise APIError(400, f"`{name}` must be between {minimum} and {maximum}.", param=name)
    return value


def bool_param(request: HttpRequest, name: str) -> bool | None:
    raw = param(request, name).lower()
    if not raw:
        return None
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise APIError(400, f"`{name}` must be true or false, not {raw!r}.", param=name)


def time_param(request: HttpRequest, name: str) -> datetime.datetime | None:
    raw = param(request, name)
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
    def of(cls, request: HttpRequest, body: dict[str, Any] | None = None, where: str = "") -> Scope:
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
            places.append((f"`{name}`", name, param(request, name)))
            places.append((header, header, request.META.get(meta, "")))
            checked = [(label, run_name(value, label.strip("`") if label[0] == "`" else label, limit, param=named))
                       for label, named, value in places]
            names[name] = _agreeing(name, checked)
            if name == "scenario":
                said = any(value for label, value in checked if label != header)
        default = bool_param(request, "default") is True
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
