"""The OpenAI Responses API wire format (POST /v1/responses): request, response object, event stream."""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all, tool_texts
from responses_app.providers.chunking import split_text
from responses_app.providers.common import (
    ResponseIds,
    dumps,
    invalid,
    json_type,
    make_ids,
    optional_bool,
    optional_int,
    require_str,
)
from responses_app.providers.openai_chat import (
    ARGUMENT_PIECE,
    content_texts,
    effective_ids,
    forced_tool,
    parse_tools,
    render_error,
)

NAME = "openai"
ENDPOINT = "responses"
__all__ = ["render_error", "render_stream", "parse", "render_json", "render_stream_error"]


def parse(data: dict) -> ChatRequest:
    """Validate a Responses API body; `input` is a string or a list of input items."""
    model = require_str(data, "model")
    raw_input = data.get("input")
    if raw_input is None:
        raise invalid("`input` is required.", "input")
    items = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
    if not isinstance(items, list) or not items:
        raise invalid("`input` must be a string or a non-empty array of input items.", "input")
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid("`instructions` must be a string.", "instructions")
    counted = [instructions] if instructions else []
    prompt, user_texts, system, conversation = "", [], [instructions] if instructions else [], []
    assistant_turns, previous_was_assistant, has_tool_result = 0, False, False
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"`{where}` must be an object, not {json_type(item)}.", where)
        kind = item.get("type", "message")
        assistant = False
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise invalid(f"`{where}.role` must be user, assistant, system or developer; got {role!r}.", f"{where}.role")
            text = "\n".join(content_texts(item.get("content"), f"{where}.content", allow_null=False))
            counted.append(text)
            conversation.append(text)
            if role == "user":
                user_texts.append(text)
                prompt = text or prompt
            elif role == "assistant":
                assistant = True
            else:
                system.append(text)
        elif kind == "function_call":
            assistant = True
            counted.extend(str(item.get(k, "")) for k in ("name", "arguments"))
        elif kind == "function_call_output":
            has_tool_result = True
            output = item.get("output")
            counted.append(output if isinstance(output, str) else json.dumps(output))
        if assistant and not previous_was_assistant:
            assistant_turns += 1
        previous_was_assistant = assistant
    tools = parse_tools(data)
    text_format = (data.get("text") or {}).get("format") if isinstance(data.get("text"), dict) else None
    schema = None
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        schema = text_format.get("schema") if isinstance(text_format.get("schema"), dict) else {"type": "object"}
    optional_int(data, "max_output_tokens", minimum=1)
    return ChatRequest(
        provider=NAME, endpoint="responses", model=model, prompt=prompt, user_texts=tuple(user_texts),
        system="\n".join(system), conversation="\n".join(conversation), tools=tools,
        forced_tool=forced_tool(data.get("tool_choice"), tools), any_tool=data.get("tool_choice") == "required",
        has_tool_result=has_tool_result,
        turn=assistant_turns + 1, stream=optional_bool(data, "stream"),
        input_tokens=count_all(counted + tool_texts(tools)), json_schema=schema,
        json_mode=isinstance(text_format, dict) and text_format.get("type") == "json_object",
    )


def new_ids() -> ResponseIds:
    return make_ids("resp_", 32)


def _items(match: Match, done: bool) -> list[dict]:
    reply = match.reply
    status = "completed" if done else "in_progress"
    items: list[dict] = []
    if reply.text is not None:
        items.append({
            "id": "msg_" + secrets.token_hex(16), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
        })
    for call in reply.tool_calls:
        items.append({
            "id": "fc_" + secrets.token_hex(16), "type": "function_call", "status": status,
            "call_id": call.id or "call_" + secrets.token_hex(12), "name": call.name, "arguments": call.arguments,
        })
    return items


def _response(request: ChatRequest, match: Match, ids: ResponseIds, items: list[dict], done: bool) -> dict:
    input_tokens = match.reply.usage.get("input_tokens", request.input_tokens)
    output_tokens = match.reply.usage.get("output_tokens", match.output_tokens)
    filtered = done and match.reply.openai_finish() == "content_filter"  # a content filter cut the answer off
    return {
        "id": ids.response_id, "object": "response", "created_at": ids.created,
        "status": ("incomplete" if filtered else "completed") if done else "in_progress",
        "completed_at": int(time.time()) if done and not filtered else None, "error": None,
        "incomplete_details": {"reason": "content_filter"} if filtered else None, "instructions": request.system or None,
        "max_output_tokens": None, "model": request.model, "output": items if done else [],
        "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": [{"type": "function", "name": t.name, "parameters": t.schema, "strict": False,
                   "description": None} for t in request.tools],
        "top_p": 1.0, "truncation": "disabled", "user": None, "metadata": {},
        "usage": {
            "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        } if done else None,
    }


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    ids = effective_ids(match.reply, ids)
    return dumps(_response(request, match, ids, _items(match, True), True))


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """The full event stream: created, in_progress, each item's lifecycle, completed (no [DONE])."""
    ids = effective_ids(match.reply, ids)
    sequence = 0

    def event(payload: dict[str, Any]) -> bytes:
        nonlocal sequence
        payload = {"type": payload["type"], "sequence_number": sequence, **payload}
        sequence += 1
        return b"event: " + payload["type"].encode() + b"\ndata: " + dumps(payload) + b"\n\n"

    items = _items(match, True)
    yield event({"type": "response.created", "response": _response(request, match, ids, items, False)})
    yield event({"type": "response.in_progress", "response": _response(request, match, ids, items, False)})
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event({"type": "response.output_item.added", "output_index": index,
                         "item": {**item, "status": "in_progress", "content": []}})
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event({"type": "response.content_part.added", **where,
                         "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
            for piece in split_text(text, chunk):
                yield event({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []})
            yield event({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
            yield event({"type": "response.content_part.done", **where, "part": item["content"][0]})
        else:
            yield event({"type": "response.output_item.added", "output_index": index,
                         "item": {**item, "status": "in_progress", "arguments": ""}})
            arguments = item["arguments"]
            for at in range(0, len(arguments), ARGUMENT_PIECE):
                yield event({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                             "output_index": index, "delta": arguments[at:at + ARGUMENT_PIECE]})
            yield event({"type": "response.function_call_arguments.done", "item_id": item["id"],
                         "output_index": index, "name": item["name"], "arguments": arguments})
        yield event({"type": "response.output_item.done", "output_index": index, "item": item})
    final = _response(request, match, ids, items, True)
    yield event({"type": "response.incomplete" if final["status"] == "incomplete" else "response.completed",
                 "response": final})


def render_stream_error(message: str, *, error_type: str | None = None) -> bytes:
    payload = {"type": "error", "sequence_number": 0, "code": error_type or "server_error", "message": message,
               "param": None}
    return b"event: error\ndata: " + dumps(payload) + b"\n\n"
