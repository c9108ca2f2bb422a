"""The OpenAI chat completions wire format: request, response body, stream chunks, error body."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..matching import Match
from ..tokens import count_all
from .common import ResponseIds, dumps, invalid, json_type, new_ids, optional_bool, optional_int, require_str

NAME = "openai"
SYSTEM_FINGERPRINT = "fp_mockllm"
ROLES = ("developer", "system", "user", "assistant", "tool", "function")
ERROR_TYPES = {
    400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
    404: "invalid_request_error", 405: "invalid_request_error", 408: "timeout", 409: "conflict",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    prompt: str  # the text of the last user message
    stream: bool
    n: int
    include_usage: bool
    input_tokens: int


def _content_texts(content: Any, param: str, *, allow_null: bool) -> list[str]:
    """The text pieces of a message's content (a string or an array of parts)."""
    if content is None:
        if allow_null:
            return []
        raise invalid(f"`{param}` is required.", param)
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid(f"`{param}` must be a string or an array of content parts, not {json_type(content)}.", param)
    texts = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(f"`{where}` must be an object with a string `type`.", where)
        if part["type"] in ("text", "refusal"):
            text = part.get(part["type"])
            if not isinstance(text, str):
                raise invalid(f"`{where}.{part['type']}` must be a string.", f"{where}.{part['type']}")
            texts.append(text)
    return texts


def parse_request(data: dict) -> ChatRequest:
    """Validate a chat completions body; raise APIError(400) naming the first bad field."""
    model = require_str(data, "model")
    messages = data.get("messages")
    if messages is None:
        raise invalid("`messages` is required.", "messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` must be a non-empty array of messages.", "messages")
    prompt = ""
    counted: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"`{where}` must be an object, not {json_type(message)}.", where)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"`{where}.role` must be one of {', '.join(ROLES)}; got {role!r}.", f"{where}.role")
        texts = _content_texts(message.get("content"), f"{where}.content", allow_null=role in ("assistant", "function"))
        counted.extend(texts)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise invalid(f"`{where}.tool_calls` must be an array.", f"{where}.tool_calls")
            for j, call in enumerate(tool_calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    raise invalid(f"`{where}.tool_calls[{j}].function` must be an object.", f"{where}.tool_calls[{j}]")
                counted.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
        if role == "user":
            prompt = "\n".join(texts)
    stream = optional_bool(data, "stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("`stream_options` must be an object.", "stream_options")
    include_usage = optional_bool(options or {}, "include_usage", "stream_options.include_usage")
    n = optional_int(data, "n", minimum=1, maximum=128) or 1
    optional_int(data, "max_tokens", minimum=1)
    optional_int(data, "max_completion_tokens", minimum=1)
    return ChatRequest(model, prompt, stream, n, include_usage, count_all(counted))


def _usage(chat: ChatRequest, match: Match) -> dict:
    completion = match.answer_tokens * chat.n
    return {
        "prompt_tokens": chat.input_tokens,
        "completion_tokens": completion,
        "total_tokens": chat.input_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def new_response_ids() -> ResponseIds:
    return new_ids("chatcmpl-")


def render_json(chat: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed chat.completion body."""
    message = {"role": "assistant", "content": match.answer, "refusal": None, "annotations": []}
    return dumps({
        "id": ids.response_id,
        "object": "chat.completion",
        "created": ids.created,
        "model": chat.model,
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": "stop"} for i in range(chat.n)
        ],
        "usage": _usage(chat, match),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    })


def iter_stream(chat: ChatRequest, match: Match, ids: ResponseIds) -> Iterator[bytes]:
    """The SSE events of a streamed answer, one chunk per character, each a complete `data:` event."""
    head = (
        b'data: {"id":' + dumps(ids.response_id) + b',"object":"chat.completion.chunk","created":'
        + str(ids.created).encode() + b',"model":' + dumps(chat.model)
        + b',"system_fingerprint":"' + SYSTEM_FINGERPRINT.encode() + b'","choices":['
    )
    tail = b'],"usage":null}\n\n' if chat.include_usage else b"]}\n\n"
    for i in range(chat.n):
        yield (head + b'{"index":' + str(i).encode()
               + b',"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}'
               + tail)
    content_heads = [head + b'{"index":' + str(i).encode() + b',"delta":{"content":' for i in range(chat.n)]
    content_tail = b'},"logprobs":null,"finish_reason":null}' + tail
    for char in match.answer:
        piece = dumps(char)
        for content_head in content_heads:
            yield content_head + piece + content_tail
    for i in range(chat.n):
        yield head + b'{"index":' + str(i).encode() + b',"delta":{},"logprobs":null,"finish_reason":"stop"}' + tail
    if chat.include_usage:
        yield head + b'],"usage":' + dumps(_usage(chat, match)) + b"}\n\n"
    yield b"data: [DONE]\n\n"


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None,
               error_type: str | None = None, request_id: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": error_type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def stream_error_event(message: str) -> bytes:
    """A mid-stream error: the SDK raises openai.APIError on any chunk with an `error` key."""
    body = error_body(500, message)
    return b"data: " + dumps(body) + b"\n\n"
