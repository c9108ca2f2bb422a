"""The Anthropic messages wire format: request, response body, stream events, error body."""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from responses_app.canned.conversation import ChatRequest, Reply, Tool
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all, tool_texts
from responses_app.providers.chunking import json_pieces
from responses_app.providers.common import (
    ResponseIds,
    dumps,
    invalid,
    json_type,
    make_ids,
    optional_bool,
    optional_int,
    parse_tools,
    require_list,
    require_str,
)

NAME = "anthropic"
ENDPOINT = "messages"
ROLES = ("user", "assistant")
ARGUMENT_PIECE = 16  # characters of tool input JSON per input_json_delta
DEFAULT_THINKING = "The question matches a canned answer, so the reply is already known."
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error", 409: "conflict_error",
    413: "request_too_large", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


def _block_texts(blocks: Any, param: str, found: dict[str, bool]) -> list[str]:
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
        elif kind == "tool_result":
            found["tool_result"] = True
            if block.get("content") is not None:
                texts.extend(_block_texts(block["content"], f"{where}.content", found))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            texts.append(block["thinking"])
    return texts


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block["text"] for block in content if block.get("type") == "text")


def _tools(data: dict) -> tuple[Tool, ...]:
    return parse_tools(data, lambda tool: (tool.get("name"), tool.get("input_schema")), "tools.{i}")


def output_schema(data: dict) -> dict | None:
    """The JSON schema the answer's text must satisfy: `output_config.format` (structured outputs), or the
    top-level `output_format` that earlier beta clients send."""
    config = data.get("output_config")
    spec = config.get("format") if isinstance(config, dict) else None
    if spec is None:
        spec = data.get("output_format")
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        return None
    return spec["schema"] if isinstance(spec.get("schema"), dict) else {"type": "object"}


def parse(data: dict, *, endpoint: str = "messages") -> ChatRequest:
    """Validate a messages body (or a count_tokens body); raise APIError(400) naming the first bad field."""
    model = require_str(data, "model")
    if endpoint == "messages":
        optional_int(data, "max_tokens", minimum=1, required=True)
    messages = require_list(data, "messages")
    found: dict[str, bool] = {}
    counted: list[str] = []
    system = data.get("system")
    system_texts = _block_texts(system, "system", found) if system is not None else []
    counted.extend(system_texts)
    prompt, user_texts, conversation, assistant_turns = "", [], list(system_texts), 0
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise invalid(f"`{where}` must be an object, not {json_type(message)}.", where)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"`{where}.role` must be \"user\" or \"assistant\"; got {role!r}.", f"{where}.role")
        if "content" not in message:
            raise invalid(f"`{where}.content` is required.", f"{where}.content")
        texts = _block_texts(message["content"], f"{where}.content", found)
        counted.extend(texts)
        conversation.append("\n".join(texts))
        if role == "user":
            text = _user_text(message["content"])
            user_texts.append(text)
            if text:
                prompt = text
        else:
            assistant_turns += 1
    tools = _tools(data)
    choice = data.get("tool_choice")
    forced, any_tool = None, False
    if isinstance(choice, dict):
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            forced = choice["name"]
        elif choice.get("type") == "any" and tools:
            forced, any_tool = tools[0].name, True
    thinking = data.get("thinking")
    schema = output_schema(data)
    if schema is not None:
        counted.append(json.dumps(schema, sort_keys=True))
    return ChatRequest(
        provider=NAME, endpoint=endpoint, model=model, prompt=prompt, user_texts=tuple(user_texts),
        system="\n".join(system_texts), conversation="\n".join(conversation), tools=tools, forced_tool=forced, any_tool=any_tool,
        has_tool_result=found.get("tool_result", False), turn=assistant_turns + 1,
        stream=optional_bool(data, "stream") if endpoint == "messages" else False,
        input_tokens=count_all(counted + tool_texts(tools)),
        thinking=isinstance(thinking, dict) and thinking.get("type") == "enabled", json_schema=schema,
    )


def new_ids() -> ResponseIds:
    return make_ids("msg_01", 22)


def _usage(request: ChatRequest, match: Match, output_tokens: int | None = None) -> dict:
    return {
        "input_tokens": match.reply.usage.get("input_tokens", request.input_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": match.reply.usage.get("output_tokens", match.output_tokens) if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def signature(thinking: str) -> str:
    """An opaque, stable stand-in for the signature real thinking blocks carry."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def tool_use_id(message_id: str, index: int) -> str:
    """A tool call's id when the entry fixes none: new with each message id, the same for the same one (so a
    thread holds the ids its client was sent)."""
    return "toolu_01" + hashlib.sha256(f"{message_id}/{index}".encode()).hexdigest()[:22]


def blocks(request: ChatRequest, reply: Reply, message_id: str) -> list[dict]:
    """The reply's content blocks: thinking (when the request enables it), text, then tool_use."""
    content: list[dict] = []
    if request.thinking:
        thinking = reply.thinking or DEFAULT_THINKING
        sign = reply.signature if reply.thinking and reply.signature else signature(thinking)  # a recording's own
        content.append({"type": "thinking", "thinking": thinking, "signature": sign})
    if reply.text is not None or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text or ""})
    for index, call in enumerate(reply.tool_calls):
        content.append({"type": "tool_use", "id": call.id or tool_use_id(message_id, index),
                        "name": call.name, "input": json.loads(call.arguments)})
    return content


def _ids(reply: Reply, ids: ResponseIds) -> str:
    return reply.response_id or ids.response_id


def assistant_message(request: ChatRequest, match: Match, ids: ResponseIds) -> tuple[str, dict]:
    """The answer's id and the assistant message it adds to the conversation, as a client sends it back."""
    message_id = _ids(match.reply, ids)
    return message_id, {"role": "assistant", "content": blocks(request, match.reply, message_id)}


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed message body."""
    return dumps({
        "id": _ids(match.reply, ids),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": blocks(request, match.reply, _ids(match.reply, ids)),
        "stop_reason": match.reply.anthropic_stop(),
        "stop_sequence": None,
        "usage": _usage(request, match),
    })


def _event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """The SSE events of a streamed answer: every event named; text one character (or `chunk`) per delta."""
    message_id = _ids(match.reply, ids)
    start = {
        "id": message_id, "type": "message", "role": "assistant", "model": request.model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(request, match, 0),
    }
    yield _event("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(blocks(request, match.reply, message_id)):
        kind = block["type"]
        empty = {"text": {"type": "text", "text": ""},
                 "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": {**block, "input": {}}}[kind]
        yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty})
        if index == 0:
            yield _event("ping", {"type": "ping"})
        prefix = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":' + str(index).encode()
        if kind == "text":
            for piece in json_pieces(block["text"], chunk):
                yield prefix + b',"delta":{"type":"text_delta","text":' + piece + b"}}\n\n"
        elif kind == "thinking":
            for piece in json_pieces(block["thinking"], chunk):
                yield prefix + b',"delta":{"type":"thinking_delta","thinking":' + piece + b"}}\n\n"
            yield prefix + b',"delta":{"type":"signature_delta","signature":' + dumps(block["signature"]) + b"}}\n\n"
        else:
            arguments = dumps(block["input"]).decode()
            pieces = [""] + [arguments[at:at + ARGUMENT_PIECE] for at in range(0, len(arguments), ARGUMENT_PIECE)]
            for piece in pieces:
                yield prefix + b',"delta":{"type":"input_json_delta","partial_json":' + dumps(piece) + b"}}\n\n"
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    usage = _usage(request, match)
    del usage["service_tier"]  # cumulative counts only, as the real API's message_delta has them
    yield _event("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": match.reply.anthropic_stop(), "stop_sequence": None},
        "usage": usage,
    })
    yield _event("message_stop", {"type": "message_stop"})


def parse_count(data: dict) -> ChatRequest:
    """A POST /v1/messages/count_tokens body: a messages body without `max_tokens`."""
    return parse(data, endpoint="count_tokens")


def count(request: ChatRequest) -> bytes:
    """The body of POST /v1/messages/count_tokens: the same count as `usage.input_tokens`."""
    return dumps({"input_tokens": request.input_tokens})


def render_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
               error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
    body: dict = {
        "type": "error",
        "error": {"type": error_type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
                  "message": message},
    }
    if details:
        body["error"]["details"] = details
    if request_id:
        body["request_id"] = request_id
    return body


def render_stream_error(message: str, *, error_type: str | None = None) -> bytes:
    """A mid-stream error event (`api_error` unless another type is asked for); the SDK raises APIStatusError
    with this body."""
    return _event("error", render_error(500, message, error_type=error_type))
