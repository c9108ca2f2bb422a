"""The OpenAI legacy text completions wire format (POST /v1/completions)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match
from responses_app.canned.tokens import count_tokens
from responses_app.providers.chunking import split_text
from responses_app.providers.common import (
    ResponseIds,
    dumps,
    invalid,
    make_ids,
    optional_bool,
    optional_int,
    require_str,
)
from responses_app.providers.openai_chat import (
    MAX_N,
    SYSTEM_FINGERPRINT,
    effective_ids,
    render_error,
    render_stream_error,
)

NAME = "openai"
ENDPOINT = "completions"
__all__ = ["render_error", "render_stream", "parse", "render_json", "render_stream_error"]


def _prompt_text(prompt: object) -> str:
    """`prompt` as text: a string, the first of a list of strings, or token ids written out."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        first = prompt[0]
        if isinstance(first, str) and all(isinstance(p, str) for p in prompt):
            return first
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return " ".join(str(p) for p in prompt)
        if isinstance(first, list) and all(isinstance(t, int) for t in first):
            return " ".join(str(t) for t in first)
    raise invalid("`prompt` must be a string, an array of strings, or an array of token ids.", "prompt")


def parse(data: dict) -> ChatRequest:
    model = require_str(data, "model")
    if "prompt" not in data:
        raise invalid("`prompt` is required.", "prompt")
    prompt = _prompt_text(data["prompt"])
    optional_int(data, "max_tokens", minimum=0)
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("`stream_options` must be an object.", "stream_options")
    return ChatRequest(
        provider=NAME, endpoint="completions", model=model, prompt=prompt, user_texts=(prompt,),
        conversation=prompt, stream=optional_bool(data, "stream"),
        n=optional_int(data, "n", minimum=1, maximum=MAX_N) or 1,
        include_usage=optional_bool(options or {}, "include_usage", "stream_options.include_usage"),
        input_tokens=count_tokens(prompt),
    )


def new_ids() -> ResponseIds:
    return make_ids("cmpl-")


def _usage(request: ChatRequest, match: Match) -> dict:
    prompt_tokens = match.reply.usage.get("input_tokens", request.input_tokens)
    completion = match.reply.usage.get("output_tokens", match.output_tokens * request.n)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def render_json(request: ChatRequest, match: Match, ids: ResponseIds) -> bytes:
    ids = effective_ids(match.reply, ids)
    finish = match.reply.openai_finish() if match.reply.openai_finish() != "tool_calls" else "stop"
    return dumps({
        "id": ids.response_id, "object": "text_completion", "created": ids.created, "model": request.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"text": match.reply.text or "", "index": i, "logprobs": None, "finish_reason": finish}
                    for i in range(request.n)],
        "usage": _usage(request, match),
    })


def render_stream(request: ChatRequest, match: Match, ids: ResponseIds, chunk: Any = "char") -> Iterator[bytes]:
    """Chunks of the same `text_completion` object: one character each, then the finish, then [DONE]."""
    ids = effective_ids(match.reply, ids)
    head = (b'data: {"id":' + dumps(ids.response_id) + b',"object":"text_completion","created":'
            + str(ids.created).encode() + b',"model":' + dumps(request.model)
            + b',"system_fingerprint":"' + SYSTEM_FINGERPRINT.encode() + b'","choices":[')
    tail = b'],"usage":null}\n\n' if request.include_usage else b"]}\n\n"
    for text_piece in split_text(match.reply.text or "", chunk):
        piece = dumps(text_piece)
        for i in range(request.n):
            yield head + b'{"text":' + piece + b',"index":' + str(i).encode() + b',"logprobs":null,"finish_reason":null}' + tail
    finish = match.reply.openai_finish() if match.reply.openai_finish() != "tool_calls" else "stop"
    for i in range(request.n):
        yield head + b'{"text":"","index":' + str(i).encode() + b',"logprobs":null,"finish_reason":' + dumps(finish) + b"}" + tail
    if request.include_usage:
        yield head + b'],"usage":' + dumps(_usage(request, match)) + b"}\n\n"
    yield b"data: [DONE]\n\n"
