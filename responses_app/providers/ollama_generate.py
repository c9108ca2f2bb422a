"""The Ollama completion wire format (POST /api/generate): a prompt in, `response` text out, streamed as
NDJSON by default. Its framing, errors, options and durations are /api/chat's (ollama_chat.py)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all
from responses_app.providers.chunking import split_text
from responses_app.providers.common import ResponseIds, dumps, invalid, require_str
from responses_app.providers.ollama_chat import (
    ANY_CONTENT_TYPE,
    MALFORMED_EVENT,
    STREAM_CONTENT_TYPE,
    check_options,
    created_at,
    done_reason,
    effective_ids,
    final_line,
    load_line,
    loads_only,
    metrics,
    new_ids,
    optional_text,
    parse_format,
    parse_stream,
    parse_think,
    render_error,
    render_stream_error,
    thinking_of,
)

NAME = "ollama"
ENDPOINT = "generate"
__all__ = ["ANY_CONTENT_TYPE", "MALFORMED_EVENT", "STREAM_CONTENT_TYPE", "new_ids", "parse", "render_error",
           "render_json", "render_stream", "render_stream_error"]


def parse(data: dict) -> ChatRequest:
    """Validate a generate body; raise APIError(400) naming the first bad field."""
    model = require_str(data, "model")
    prompt = optional_text(data.get("prompt"), "prompt")
    system = optional_text(data.get("system"), "system")
    suffix = optional_text(data.get("suffix"), "suffix")
    optional_text(data.get("template"), "template")
    for key in ("images", "context"):
        if data.get(key) is not None and not isinstance(data[key], list):
            raise invalid(f"`{key}` must be an array.", key)
    schema, json_mode = parse_format(data)
    check_options(data)
    counted = [system, prompt, suffix]
    if schema is not None:
        counted.append(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode())
    return ChatRequest(
        provider=NAME, endpoint=ENDPOINT, model=model, prompt=prompt, user_texts=(prompt,) if prompt else (), system=system,
        conversation="\n".join(text for text in (system, prompt) if text), stream=parse_stream(data),
        input_tokens=count_all(counted), json_schema=schema, json_mode=json_mode, thinking=parse_think(data),
    )


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed answer: the whole `response`, `done: true` and the durations."""
    if loads_only(request):
        return load_line(request, ids, {"response": ""})
    reply = match.reply
    body: dict[str, Any] = {"model": request.model, "created_at": created_at(effective_ids(reply, ids)),
                            "response": reply.text or ""}
    thinking = thinking_of(request, reply)
    if thinking is not None:
        body["thinking"] = thinking
    return dumps({**body, "done_reason": done_reason(reply), "done": True, **metrics(request, match)})


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """The NDJSON lines: thinking, then the response, one piece per line, and the final `done` line."""
    if loads_only(request):
        yield load_line(request, ids, {"response": ""})
        return
    reply = match.reply
    head = (b'{"model":' + dumps(request.model) + b',"created_at":"' + created_at(effective_ids(reply, ids)).encode()
            + b'","response":')
    thinking = thinking_of(request, reply)
    if thinking:
        for piece in split_text(thinking, chunk):
            yield head + b'"","thinking":' + dumps(piece) + b',"done":false}\n'
    if reply.text:
        for piece in split_text(reply.text, chunk):
            yield head + dumps(piece) + b',"done":false}\n'
    yield final_line(head, b'""', request, match)
