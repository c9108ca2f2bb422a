"""Failures and timing on demand: what to break or slow down for one request, decided in one place.

Two moments: before a view reads the request (`before_view`: an error asked for with X-Mock-Status,
whatever the path and body, and a note when a client retried too early), and once the answer is found
(`decide`: the plan's error, stream fault and timing, and the rate limits). Sources of the plan,
strongest first: the request's X-Mock-* headers, the matched entry's options, the `models:` rules of the
responses file's `settings:` (by model glob), then its global settings. errors.py renders what is decided.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import logging
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse

from responses_app.api.clients import client_key
from responses_app.api.errors import error_response, mock_error_response, retry_after_of
from responses_app.api.rate_limits import Budget, rate_limiter
from responses_app.api.record import RequestRecord, record_of
from responses_app.canned.conversation import Reply
from responses_app.canned.fault_schema import (
    header_params,
    parse_content_filter,
    parse_error,
    parse_stream_error,
    parse_timing,
)
from responses_app.canned.fields import EntryError
from responses_app.canned.matching import Match
from responses_app.providers.common import APIError

logger = logging.getLogger("mockllm.faults")

ERROR_MODEL = re.compile(r"^mock-error-(\d{3})$")


# -- what to do for one request -----------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """The failures and timing chosen for one request."""

    error: dict[str, Any] | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    stream_error: dict[str, Any] | None = None
    budget: Budget | None = None  # the client's rate-limit budgets after this request, when limits are set
    refusal: HttpResponse | None = None  # the error answer, when the request is refused
    content_filter: dict[str, Any] | None = None  # a content filter's refusal of the prompt or the completion


class RandomFailures:
    """The nth request of a process fails when the nth draw of Random(seed) is under the rate: the
    same order of requests gives the same failures, run after run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[tuple[int, str], random.Random] = {}

    def draw(self, seed: int, scope: str) -> float:
        with self._lock:
            generator = self._streams.setdefault((seed, scope), random.Random(seed))
            return generator.random()

    def reset(self) -> None:
        with self._lock:
            self._streams.clear()


random_failures = RandomFailures()


def lag_timing(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The original server's `lag_enabled`/`lag_factor`: lag_factor characters per second, ±20%."""
    if settings.get("lag_enabled"):
        return {"characters_per_second": float(settings.get("lag_factor") or 10), "jitter": 0.2}
    return {}


def plan_for(headers: Mapping[str, str], model: str, entry_options: Mapping[str, Any] | None,
             settings: Mapping[str, Any]) -> Plan:
    """Combine the sources for one request (see the module docstring); raises EntryError on a bad header."""
    rules = [rule for glob, rule in (settings.get("models") or {}).items() if fnmatch.fnmatchcase(model, glob)]
    entry = entry_options or {}

    timing = {**lag_timing(settings), **(settings.get("timing") or {})}
    for rule in rules:
        timing.update(rule.get("timing", {}))
    timing.update(entry.get("timing", {}))
    if "x-mock-timing" in headers:
        timing.update(parse_timing(header_params(headers["x-mock-timing"]), "X-Mock-Timing"))

    error = None
    if (found := ERROR_MODEL.match(model)) and 400 <= int(found.group(1)) <= 599:
        error = {"status": int(found.group(1))}
    for rule in rules:
        error = rule.get("error", error)
    error = entry.get("error", error)
    if error is None:
        for failures in [settings.get("failures")] + [rule.get("failures") for rule in rules]:
            if failures and failures.get("rate", 0) > 0:
                draw = random_failures.draw(failures["seed"], "failures")
                if draw < failures["rate"]:
                    statuses = failures["statuses"]
                    error = {"status": statuses[int(draw / failures["rate"] * len(statuses)) % len(statuses)]}

    stream_error = None
    for rule in rules:
        stream_error = rule.get("stream_error", stream_error)
    stream_error = entry.get("stream_error", stream_error)
    if "x-mock-stream-error" in headers:
        params = header_params(headers["x-mock-stream-error"])
        if params.get("mode") in ("1", "true", "yes"):
            params["mode"] = "error"
        stream_error = parse_stream_error(params, "X-Mock-Stream-Error")

    content_filter = None
    for rule in rules:
        content_filter = rule.get("content_filter", content_filter)
    content_filter = entry.get("content_filter", content_filter)
    if "x-mock-content-filter" in headers:
        params = header_params(headers["x-mock-content-filter"])
        params["on"] = params.pop("mode", params.get("on", ""))
        content_filter = parse_content_filter(params, "X-Mock-Content-Filter")
    return Plan(error=error, timing=timing, stream_error=stream_error, content_filter=content_filter)


def error_from_headers(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """`X-Mock-Status: 429` with optional X-Mock-Retry-After, X-Mock-Should-Retry, X-Mock-Error-Message."""
    if "x-mock-status" not in headers:
        return None
    spec: dict[str, Any] = {"status": headers["x-mock-status"]}
    for header, key in (("x-mock-retry-after", "retry_after"), ("x-mock-should-retry", "should_retry"),
                        ("x-mock-error-message", "message")):
        if header in headers:
            spec[key] = headers[header]
    return parse_error(spec, "X-Mock-Status")


def mock_headers(request: HttpRequest) -> dict[str, str]:
    """The request's X-Mock-* headers, by lower-case name."""
    return {name[5:].lower().replace("_", "-"): value for name, value in request.META.items()
            if name.startswith("HTTP_X_MOCK_")}


def refuse(request: HttpRequest, spec: Mapping[str, Any], *, source: str, budget: Budget | None = None) -> HttpResponse:
    """Answer with the error asked for, and remember the retry-after given, to notice a client that
    comes back sooner."""
    response = mock_error_response(request, spec, source=source, budget=budget)
    retry_after = retry_after_of(spec, budget)
    if retry_after is not None:
        rate_limiter.note_retry_after(client_key(request, record_of(request).client), retry_after)
    return response


def before_view(request: HttpRequest) -> HttpResponse | None:
    """Before the request is read: note a client that came back before its retry-after, and answer
    `X-Mock-Status` on any /v1/ path."""
    record = record_of(request)
    client = client_key(request, record.client)
    early = rate_limiter.early_by(client)
    if early is not None:
        record.notes["early_retry_ms"] = round(early * 1000)
        logger.warning("a client retried %.0f ms before the retry-after it was given", early * 1000,
                       extra={"event": "early_retry", "client": client, "early_ms": round(early * 1000)})
    if "HTTP_X_MOCK_STATUS" not in request.META:
        return None
    try:
        spec = error_from_headers(mock_headers(request))
    except EntryError as exc:
        return error_response(request, 400, f"{exc.message} (in the X-Mock-* headers)")
    return refuse(request, spec, source="X-Mock-Status header")


def decide(request: HttpRequest, record: RequestRecord, match: Match, settings: Mapping[str, Any]) -> Plan:
    """The plan for a request whose answer was found: its failures and timing, and its rate limits."""
    try:
        plan = plan_for(mock_headers(request), record.model or "", match.entry.faults if match.entry else None,
                        settings)
    except EntryError as exc:
        raise APIError(400, f"{exc.message} (in the X-Mock-* headers)") from None
    budget = None
    if settings.get("rate_limits"):
        budget = rate_limiter.spend(client_key(request, record.client), settings["rate_limits"],
                                    (record.input_tokens or 0) + (record.output_tokens or 0))
        if budget.retry_after is not None:
            refusal = refuse(request, {"status": 429, "retry_after": budget.retry_after}, source="rate limit",
                             budget=budget)
            return dataclasses.replace(plan, budget=budget, refusal=refusal)
    if plan.error is not None:
        refusal = refuse(request, plan.error, source="error asked for", budget=budget)
        return dataclasses.replace(plan, budget=budget, refusal=refusal)
    if plan.content_filter is not None and plan.content_filter["on"] == "prompt":
        refusal = refuse(request, prompt_filtered(plan.content_filter), source="content filter", budget=budget)
        return dataclasses.replace(plan, budget=budget, refusal=refusal)
    return dataclasses.replace(plan, budget=budget) if budget is not None else plan


# Azure OpenAI's words for a filtered prompt (other formats get the same message in their own shape).
PROMPT_FILTERED = ("The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
                   "Please modify your prompt and retry. To learn more about our content filtering policies please "
                   "read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766")


def prompt_filtered(content_filter: Mapping[str, Any]) -> dict[str, Any]:
    """The error a filtered prompt gets: a 400 `content_filter`, naming the category (Azure's innererror)."""
    return {"status": 400, "code": "content_filter", "param": "prompt", "message": PROMPT_FILTERED,
            "filtered": (content_filter["category"], content_filter["severity"])}


def completion_filtered(match: Match, content_filter: Mapping[str, Any]) -> Match:
    """The answer a filtered completion gets: no text, no tool calls, finish_reason `content_filter`."""
    reply = Reply(text="", finish_reason="content_filter", stop_reason="refusal",
                  response_id=match.reply.response_id, created=match.reply.created,
                  filtered=(content_filter["category"], content_filter["severity"]))
    return dataclasses.replace(match, reply=reply)
