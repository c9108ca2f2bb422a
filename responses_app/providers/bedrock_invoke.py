"""Bedrock Runtime's InvokeModel wire format for Anthropic models (POST /model/{modelId}/invoke and
/invoke-with-response-stream): the body is an Anthropic Messages body with `anthropic_version:
bedrock-2023-05-31` and without `model` (the model is in the URL), answered with the Messages answer.

Parsing and rendering are anthropic_messages.py's. Streamed, each Anthropic event (but `ping`, which
the service does not send) is the payload of a `chunk` event-stream message, `{"bytes": base64 of the
event's JSON}`, as boto3 documents; the `message_stop` event carries the service's
`amazon-bedrock-invocationMetrics`. Errors are bedrock_errors.py's.
"""
from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match
from responses_app.providers import anthropic_messages, event_stream
from responses_app.providers.bedrock_errors import MALFORMED_EVENT, error_headers, render_error, render_stream_error
from responses_app.providers.common import APIError, ResponseIds, dumps, make_ids

NAME = "bedrock"
ENDPOINT = "invoke"
STREAM_CONTENT_TYPE = event_stream.CONTENT_TYPE
STREAM_HEADERS = {"X-Amzn-Bedrock-Content-Type": "application/json"}
ANTHROPIC_VERSION = "bedrock-2023-05-31"
_DATA = b"\ndata: "
_PING = b"event: ping\n"
_MESSAGE_STOP = b"event: message_stop\n"

__all__ = ["MALFORMED_EVENT", "error_headers", "render_error", "render_stream_error"]


def malformed(detail: str) -> APIError:
    return APIError(400, f"Malformed input request: {detail}, please reformat your input and try again.")


def parse(data: dict, *, model_id: str = "", stream: bool = False) -> ChatRequest:
    """Validate an Anthropic body sent to Bedrock; raise APIError(400) naming the first bad field."""
    if "anthropic_version" not in data:
        raise malformed("#: required key [anthropic_version] not found")
    if data["anthropic_version"] != ANTHROPIC_VERSION:
        raise malformed(f"#/anthropic_version: expected {ANTHROPIC_VERSION!r}")
    for key in ("model", "stream"):
        if key in data:
            raise malformed(f"#: extraneous key [{key}] is not permitted")
    parsed = anthropic_messages.parse({**data, "model": model_id})
    return dataclasses.replace(parsed, provider=NAME, endpoint=ENDPOINT, stream=stream)


def new_ids() -> ResponseIds:
    return make_ids("msg_bdrk_01", 22)


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    return anthropic_messages.render_json(request, match, ids)


_frame_chunk = event_stream.framer("chunk")


def _chunk(payload: bytes) -> bytes:
    return _frame_chunk(b'{"bytes":"' + base64.b64encode(payload) + b'"}')


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """The Anthropic stream, each event's JSON base64-encoded in a `chunk` message."""
    for event in anthropic_messages.render_stream(request, match, ids, chunk):
        if event.startswith(_PING):
            continue
        payload = event[event.index(_DATA) + len(_DATA):-2]
        if event.startswith(_MESSAGE_STOP):
            metrics = {"inputTokenCount": match.reply.usage.get("input_tokens", request.input_tokens),
                       "outputTokenCount": match.reply.usage.get("output_tokens", match.output_tokens),
                       "invocationLatency": ids.latency_ms, "firstByteLatency": 0}
            payload = dumps({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics})
        yield _chunk(payload)
