"""The Ollama chat wire format (POST /api/chat): request, response body, NDJSON stream, error body.

Ollama streams by default: one JSON object per line (`application/x-ndjson`), each a piece of the
message with `done: false`, the last with `done: true`, its `done_reason` and the durations in
nanoseconds; `"stream": false` gives that last object with the whole message. Errors are
`{"error": "..."}`, before the stream with their status and in the middle of one as a line of their own
(the ollama client raises ResponseError for both). The /api/generate format (ollama_generate.py)
shares the pieces defined here.

The durations are derived from the token counts, so the same answer reports the same numbers: a
model that reads 5,000 tokens a second and writes 50.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import orjson

from responses_app.canned.conversation import ChatRequest, Reply
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_all, tool_texts
from responses_app.providers.chunking import split_text
from responses_app.providers.common import (
    ResponseIds,
    dumps,
    invalid,
    json_type,
    make_ids,
    parse_tools,
    require_str,
)

NAME = "ollama"
ENDPOINT = "chat"
STREAM_CONTENT_TYPE = "application/x-ndjson"
ANY_CONTENT_TYPE = True  # Ollama reads the body as JSON whatever its Content-Type (its docs use `curl -d`)
MALFORMED_EVENT = b'{"model":"mockllm-malformed","message":{"role":"assistant","content":\n'
ROLES = ("system", "user", "assistant", "tool")
THINK_LEVELS = ("high", "medium", "low")
DEFAULT_THINKING = "The question matches a canned answer, so the reply is already known."
# Options whose type Ollama checks (api/types.go, Options.FromMap); any other option is accepted as it is.
INTEGER_OPTIONS = ("num_predict", "num_ctx", "num_keep", "seed", "top_k", "repeat_last_n", "num_batch", "num_gpu",
                   "main_gpu", "num_thread", "mirostat")
NUMBER_OPTIONS = ("temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty",
                  "frequency_penalty", "mirostat_tau", "mirostat_eta", "tfs_z")
LOAD_NANOSECONDS = 1_000_000
PROMPT_TOKEN_NANOSECONDS = 200_000  # 5,000 tokens a second
OUTPUT_TOKEN_NANOSECONDS = 20_000_000  # 50 tokens a second


# -- what the formats share ---------------------------------------------------------------------------

def parse_stream(data: dict) -> bool:
    """`stream` is true unless the request says false."""
    value = data.get("stream")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise invalid(f"`stream` must be a boolean (true or false), not {json_type(value)}.", "stream")
    return value


def parse_format(data: dict) -> tuple[dict | None, bool]:
    """(JSON schema, JSON mode) asked for by `format`: "json", a JSON schema, or nothing ("" or absent)."""
    value = data.get("format")
    if value is None or value == "":
        return None, False
    if value == "json":
        return None, True
    if isinstance(value, dict):
        return value, False
    raise invalid(f'invalid format: expected "json" or a valid JSON schema, not {json_type(value)}.', "format")


def parse_think(data: dict) -> bool:
    """Whether the request asks for thinking: `think` true or a level ("high", "medium", "low")."""
    value = data.get("think")
    if value is None or isinstance(value, bool):
        return bool(value)
    if value in THINK_LEVELS:
        return True
    raise invalid(f'invalid think value: {orjson.dumps(value).decode()} (must be "high", "medium", "low", true, '
                  "or false)", "think")


def check_options(data: dict) -> None:
    """`options` (the Modelfile parameters: num_predict, temperature, stop...), with the types Ollama checks.
    They change nothing in a canned answer."""
    options = data.get("options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise invalid(f"`options` must be an object, not {json_type(options)}.", "options")
    for key, value in options.items():
        if value is None:
            continue
        if key in INTEGER_OPTIONS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise invalid(f'option "{key}" must be of type integer', f"options.{key}")
        if key in NUMBER_OPTIONS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise invalid(f'option "{key}" must be of type number', f"options.{key}")
        if key == "stop" and not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
            raise invalid('option "stop" must be of an array of strings', "options.stop")


def optional_text(value: Any, param: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"`{param}` must be a string, not {json_type(value)}.", param)
    return value


def created_at(ids: ResponseIds) -> str:
    """The answer's time, as Ollama writes it (RFC 3339, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ids.created))


def new_ids() -> ResponseIds:
    return make_ids("ollama-")


def effective_ids(reply: Reply, ids: ResponseIds) -> ResponseIds:
    """A script may fix the timestamp, for snapshot tests."""
    return ids if reply.created is None else ResponseIds(ids.response_id, reply.created)


def done_reason(reply: Reply) -> str:
    return "length" if reply.openai_finish() == "length" else "stop"


def metrics(request: ChatRequest, match: Match) -> dict[str, int]:
    """The final object's counts and durations (nanoseconds), from the token counts."""
    prompt_tokens = match.reply.usage.get("input_tokens", request.input_tokens)
    output_tokens = match.reply.usage.get("output_tokens", match.output_tokens)
    prompt_duration = prompt_tokens * PROMPT_TOKEN_NANOSECONDS
    eval_duration = output_tokens * OUTPUT_TOKEN_NANOSECONDS
    return {
        "total_duration": LOAD_NANOSECONDS + prompt_duration + eval_duration,
        "load_duration": LOAD_NANOSECONDS,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_duration,
        "eval_count": output_tokens,
        "eval_duration": eval_duration,
    }


def thinking_of(request: ChatRequest, reply: Reply) -> str | None:
    """The thinking sent back: the entry's, or a stand-in, when the request asks for it."""
    return (reply.thinking or DEFAULT_THINKING) if request.thinking else None


def final_line(head: bytes, body: bytes, request: ChatRequest, match: Match) -> bytes:
    """The stream's last object: `done: true`, the reason and the durations."""
    tail = dumps({"done_reason": done_reason(match.reply), "done": True, **metrics(request, match)})
    return head + body + b"," + tail[1:] + b"\n"


def loads_only(request: ChatRequest) -> bool:
    """A request with nothing to answer (chat without messages, generate without a prompt or system), which
    Ollama answers by loading the model: one object, empty, with `done_reason: "load"`."""
    return not request.user_texts and not request.system and not request.has_tool_result and request.turn == 1


def load_line(request: ChatRequest, ids: ResponseIds, empty: dict) -> bytes:
    return dumps({"model": request.model, "created_at": created_at(ids), **empty, "done_reason": "load",
                  "done": True}) + b"\n"


def render_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
                 error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
    return {"error": message}


def render_stream_error(message: str) -> bytes:
    """A mid-stream error: a line of its own, which the ollama client raises as ResponseError."""
    return dumps({"error": message}) + b"\n"


# -- /api/chat ------------------------------------------------------------------------------------------

def _read_tool(tool: dict) -> tuple[Any, Any] | None:
    function = tool.get("function")
    if isinstance(function, dict):
        return function.get("name"), function.get("parameters")
    return None


def _tool_call_texts(calls: Any, where: str) -> list[str]:
    """The countable text of an assistant message's `tool_calls` (arguments are objects in Ollama)."""
    if not isinstance(calls, list):
        raise invalid(f"`{where}` must be an array.", where)
    texts = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"`{where}[{j}].function` must be an object with a string `name`.", f"{where}[{j}].function")
        arguments = function.get("arguments", {})
        if not isinstance(arguments, dict):
            raise invalid(f"`{where}[{j}].function.arguments` must be an object, not {json_type(arguments)}.",
                          f"{where}[{j}].function.arguments")
        texts += [function["name"], dumps(arguments).decode()]
    return texts


def parse(data: dict) -> ChatRequest:
    """Validate a chat body; raise APIError(400) naming the first bad field."""
    model = require_str(data, "model")
    messages = data.get("messages")
    if messages is None:
        messages = []
    if not isinstance(messages, list):
        raise invalid(f"`messages` must be an array, not {json_type(messages)}.", "messages")
    counted: list[str] = []
    prompt, user_texts, system, conversation = "", [], [], []
    assistant_turns, has_tool_result = 0, False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"`{where}` must be an object, not {json_type(message)}.", where)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"`{where}.role` must be one of {', '.join(ROLES)}; got {role!r}.", f"{where}.role")
        text = optional_text(message.get("content"), f"{where}.content")
        optional_text(message.get("thinking"), f"{where}.thinking")
        images = message.get("images")
        if images is not None and not isinstance(images, list):
            raise invalid(f"`{where}.images` must be an array of base64 strings.", f"{where}.images")
        counted.append(text)
        conversation.append(text)
        if message.get("tool_calls") is not None:
            counted.extend(_tool_call_texts(message["tool_calls"], f"{where}.tool_calls"))
        if role == "user":
            user_texts.append(text)
            if text:
                prompt = text
        elif role == "system":
            system.append(text)
        elif role == "assistant":
            assistant_turns += 1
        else:
            has_tool_result = True
    tools = parse_tools(data, _read_tool, "tools[{i}]")
    schema, json_mode = parse_format(data)
    if schema is not None:
        counted.append(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode())
    check_options(data)
    return ChatRequest(
        provider=NAME, endpoint=ENDPOINT, model=model, prompt=prompt, user_texts=tuple(user_texts),
        system="\n".join(system), conversation="\n".join(conversation), tools=tools, has_tool_result=has_tool_result,
        turn=assistant_turns + 1, stream=parse_stream(data), input_tokens=count_all(counted + tool_texts(tools)),
        json_schema=schema, json_mode=json_mode, thinking=parse_think(data),
    )


def tool_calls(reply: Reply) -> list[dict]:
    """The reply's tool calls, their arguments as objects."""
    return [
        {"id": call.id or "call_" + secrets.token_hex(8),
         "function": {"index": index, "name": call.name, "arguments": orjson.loads(call.arguments)}}
        for index, call in enumerate(reply.tool_calls)
    ]


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    """The non-streamed answer: the whole message, `done: true` and the durations."""
    if loads_only(request):
        return load_line(request, ids, {"message": {"role": "assistant", "content": ""}})
    reply = match.reply
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or ""}
    thinking = thinking_of(request, reply)
    if thinking is not None:
        message["thinking"] = thinking
    if reply.tool_calls:
        message["tool_calls"] = tool_calls(reply)
    return dumps({"model": request.model, "created_at": created_at(effective_ids(reply, ids)), "message": message,
                  "done_reason": done_reason(reply), "done": True, **metrics(request, match)})


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """The NDJSON lines of a streamed answer: thinking, then text, one piece per line (per character, or
    `chunk`), the tool calls in one line, and the final `done` line."""
    if loads_only(request):
        yield load_line(request, ids, {"message": {"role": "assistant", "content": ""}})
        return
    reply = match.reply
    head = (b'{"model":' + dumps(request.model) + b',"created_at":"' + created_at(effective_ids(reply, ids)).encode()
            + b'","message":{"role":"assistant","content":')
    thinking = thinking_of(request, reply)
    if thinking:
        for piece in split_text(thinking, chunk):
            yield head + b'"","thinking":' + dumps(piece) + b'},"done":false}\n'
    if reply.text:
        for piece in split_text(reply.text, chunk):
            yield head + dumps(piece) + b'},"done":false}\n'
    if reply.tool_calls:
        yield head + b'"","tool_calls":' + dumps(tool_calls(reply)) + b'},"done":false}\n'
    yield final_line(head, b'""}', request, match)
