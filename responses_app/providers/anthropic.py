"""The Anthropic messages wire format: request, response body, stream events, error body."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..matching import Match
from ..tokens import count_all
from .common import ResponseIds, dumps, invalid, json_type, new_ids, optional_bool, optional_int, require_str

NAME = "anthropic"
ROLES = ("user", "assistant")
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error", 409: "conflict_error",
    413: "request_too_large", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    prompt: str  # the text of the last user message
    stream: bool
    input_tokens: int


def _block_texts(blocks: Any, param: str) -> list[str]:
    """The countable text in a content value (a string or an array of blocks)."""
    if isinstance(blocks, str):
        return [blocks]
    if not isinstance(blocks, list):
        raise invalid(f"`{param}` must be a string or an array of content blocks, not {json_type(blocks)}.", param)
    texts: list[str] = []
    for i, block in enumerate(blocks):
        where = f"{param}.{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid(f"`{where}` must be an object with a string `type`.", where)
        kind = block["type"]
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise invalid(f"`{where}.text` must be a string.", f"{where}.text")
            texts.append(block["text"])
        elif kind == "tool_use":
            texts.append(str(block.get("name", "")))
            texts.append(dumps(block.get("input", {})).decode())
        elif kind == "tool_result" and block.get("content") is not None:
            texts.extend(_block_texts(block["content"], f"{where}.content"))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            texts.append(block["thinking"])
    return texts


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block["text"] for block in content if block.get("type") == "text")


def parse_request(data: dict) -> MessagesRequest:
    """Validate a messages body; raise APIError(400) naming the first bad field."""
    model = require_str(data, "model")
    optional_int(data, "max_tokens", minimum=1, required=True)
    messages = data.get("messages")
    if messages is None:
        raise invalid("`messages` is required.", "messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` must be a non-empty array of messages.", "messages")
    counted: list[str] = []
    system = data.get("system")
    if system is not None:
        counted.extend(_block_texts(system, "system"))
    prompt = ""
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise invalid(f"`{where}` must be an object, not {json_type(message)}.", where)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"`{where}.role` must be \"user\" or \"assistant\"; got {role!r}.", f"{where}.role")
        if "content" not in message:
            raise invalid(f"`{where}.content` is required.", f"{where}.content")
        counted.extend(_block_texts(message["content"], f"{where}.content"))
        if role == "user":
            prompt = _user_text(message["content"])
    stream = optional_bool(data, "stream")
    return MessagesRequest(model, prompt, stream, count_all(counted))


def new_response_ids() -> ResponseIds:
    return new_ids("msg_01", 22)


def _usage(request: MessagesRequest, output_tokens: int) -> dict:
    return {
        "input_tokens": request.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def render_json(request: MessagesRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed message body."""
    return dumps({
        "id": ids.response_id,
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [{"type": "text", "text": match.answer}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _usage(request, match.answer_tokens),
    })


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


def iter_stream(request: MessagesRequest, match: Match, ids: ResponseIds) -> Iterator[bytes]:
    """The SSE events of a streamed answer: every event named, one text_delta per character."""
    start = {
        "type": "message_start",
        "message": {
            "id": ids.response_id, "type": "message", "role": "assistant", "model": request.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(request, 0),
        },
    }
    yield _event(b"message_start", dumps(start))
    yield _event(
        b"content_block_start", b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
    )
    yield _event(b"ping", b'{"type":"ping"}')
    delta_head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
    for char in match.answer:
        yield delta_head + dumps(char) + b"}}\n\n"
    yield _event(b"content_block_stop", b'{"type":"content_block_stop","index":0}')
    yield _event(
        b"message_delta",
        b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":'
        + str(match.answer_tokens).encode() + b"}}",
    )
    yield _event(b"message_stop", b'{"type":"message_stop"}')


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None,
               error_type: str | None = None, request_id: str | None = None) -> dict:
    body: dict = {
        "type": "error",
        "error": {"type": error_type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
                  "message": message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def stream_error_event(message: str) -> bytes:
    """A mid-stream error event; the SDK raises APIStatusError with this body."""
    return _event(b"error", dumps(error_body(500, message)))
