"""The request path of every answering endpoint, whatever its wire format: find, plan, deliver."""
from __future__ import annotations

import dataclasses
import functools
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from responses_app.api import faults, upstream
from responses_app.api.errors import add_rate_limit_headers
from responses_app.api.faults import Plan
from responses_app.api.record import RequestRecord, record_of
from responses_app.api.sse import MALFORMED_EVENT, WHOLE_STREAM_CHARACTERS, deliver_events, whole_stream
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.fault_schema import TIMING_RATES
from responses_app.canned.index import CannedIndex, canned_index
from responses_app.canned.matching import Match
from responses_app.providers.base import Provider
from responses_app.providers.chunking import split_text, stream_seconds

logger = logging.getLogger("mockllm.answer")
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"  # a stream's, unless its provider names another


def answer(request: HttpRequest, provider: Provider, parsed: ChatRequest) -> HttpResponseBase:
    """The canned reply to a parsed request, with the failures and timing asked for, as JSON or a stream."""
    record = record_of(request)
    index = canned_index.current()
    match = find(record, index, parsed)
    match, forwarded = upstream.after_find(request, provider, parsed, index, match)  # record and replay
    if forwarded is not None:
        return forwarded
    plan = faults.decide(request, record, match, index.settings)
    if plan.refusal is not None:
        return plan.refusal
    if plan.content_filter is not None:  # a completion's (a filtered prompt is refused above)
        match = record.match = faults.completion_filtered(match, plan.content_filter)
        record.output_tokens = match.output_tokens
    return deliver(record, provider, parsed, match, plan)


def find(record: RequestRecord, index: CannedIndex, parsed: ChatRequest) -> Match:
    """The entry that answers (or the default), noted on the record."""
    match = index.find(parsed, record.client.scenario, record.client.test_id)
    record.endpoint, record.model, record.stream = parsed.endpoint, parsed.model, parsed.stream
    record.prompt = parsed.prompt
    record.match = match
    record.input_tokens, record.output_tokens = parsed.input_tokens, match.output_tokens
    return match


def deliver(record: RequestRecord, provider: Provider, parsed: ChatRequest, match: Match, plan: Plan) -> HttpResponseBase:
    """The answer as JSON or a stream, paced as the plan says. `record.hold` is how long the handler
    waits before sending it: a non-streamed answer takes as long as the stream would."""
    timing = plan.timing
    chunk = timing.get("chunk", "char")
    ttft = timing.get("ttft_ms", 0.0) / 1000
    duration = 0.0
    if any(rate in timing for rate in TIMING_RATES):  # only paced answers pay for measuring themselves
        text = match.reply.text or "".join(call.arguments for call in match.reply.tool_calls)
        duration = stream_seconds(timing, len(split_text(text, chunk)), len(text), match.output_tokens)
    ids = provider.new_ids()
    if ttft or duration:  # the answer's latency, for the formats that report it
        ids = dataclasses.replace(ids, latency_ms=round((ttft + duration) * 1000))
    record.ids = ids
    response: HttpResponseBase
    if parsed.stream:
        events = provider.render_stream(parsed, match, ids, chunk)
        error_event = provider.render_stream_error
        if plan.stream_error and plan.stream_error.get("type"):
            error_event = functools.partial(error_event, error_type=plan.stream_error["type"])
        content_type = getattr(provider, "STREAM_CONTENT_TYPE", SSE_CONTENT_TYPE)
        if not (ttft or duration or plan.stream_error) and _reply_length(match) <= WHOLE_STREAM_CHARACTERS:
            # Short, unpaced and unbroken: made now, and sent in one write by the handler (handler.py).
            response = StreamingHttpResponse([whole_stream(events, record=record, error_event=error_event)],
                                             content_type=content_type)
            response.whole = True
        else:
            response = StreamingHttpResponse(
                deliver_events(events, record=record, error_event=error_event, ttft=ttft,
                               duration=duration, jitter=timing.get("jitter", 0.0), seed=timing.get("seed"),
                               fault=plan.stream_error, stall_seconds=settings.MOCKLLM_STALL_SECONDS,
                               malformed=getattr(provider, "MALFORMED_EVENT", MALFORMED_EVENT)),
                content_type=content_type,
            )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        for name, value in getattr(provider, "STREAM_HEADERS", {}).items():
            response[name] = value
        if plan.stream_error and plan.stream_error["mode"] == "timeout":
            record.hold = settings.MOCKLLM_STALL_SECONDS  # not a byte, not even the headers
            record.stream_end = "fault:timeout"
    else:
        response = HttpResponse(provider.render_json(parsed, match, ids), content_type="application/json")
        record.hold = ttft + duration
    response["X-Mockllm-Match"] = str(match.entry.id) if match.entry else match.rule
    if match.near_misses:
        response["X-Mockllm-Near-Miss"] = _header_safe("; ".join(match.near_misses))[:2000]
    if match.warning:
        response["X-Mockllm-Warning"] = _header_safe(match.warning)
        logger.warning("%s: %s", match.entry.label() if match.entry else "answer", match.warning,
                       extra={"event": "answer_overridden", "entry": match.entry.id if match.entry else None,
                              "request_id": record.request_id})
    if plan.budget is not None:
        add_rate_limit_headers(response, plan.budget, provider)
    return response


def _reply_length(match: Match) -> int:
    reply = match.reply
    return len(reply.text or "") + len(reply.thinking or "") + sum(len(call.arguments) for call in reply.tool_calls)


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\r", " ").replace("\n", " ")
