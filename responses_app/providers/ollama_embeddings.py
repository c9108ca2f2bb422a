"""Ollama embeddings: POST /api/embed (texts in `input`, vectors in `embeddings`) and the older
POST /api/embeddings (one `prompt`, one `embedding`). The vectors are the ones /v1/embeddings gives
(openai_embeddings.py): canned where the responses file fixes them, else derived from the words."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from responses_app.canned.tokens import count_tokens
from responses_app.providers.common import dumps, invalid, json_type, optional_int, require_str
from responses_app.providers.ollama_chat import LOAD_NANOSECONDS, PROMPT_TOKEN_NANOSECONDS, check_options, render_error
from responses_app.providers.openai_embeddings import MAX_DIMENSIONS, EmbeddingsRequest


@dataclass(frozen=True)
class EmbeddingsFormat:
    """One of the two endpoints, with the names the views and errors.py look for on a provider."""

    ENDPOINT: str
    parse: Callable[[dict], EmbeddingsRequest]
    render_json: Callable[[EmbeddingsRequest, list[list[float]]], bytes]
    NAME: str = "ollama"
    ANY_CONTENT_TYPE: bool = True
    render_error: Callable[..., dict] = render_error


def _dimensions(data: dict) -> int:
    return optional_int(data, "dimensions", minimum=1, maximum=MAX_DIMENSIONS) or settings.MOCKLLM_EMBEDDING_DIMENSIONS


def parse_embed(data: dict) -> EmbeddingsRequest:
    model = require_str(data, "model")
    raw = data.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        inputs = raw
    else:
        raise invalid(f"invalid input type: `input` must be a string or an array of strings, not {json_type(raw)}.",
                      "input")
    if data.get("truncate") is not None and not isinstance(data["truncate"], bool):
        raise invalid("`truncate` must be a boolean.", "truncate")
    check_options(data)
    return EmbeddingsRequest(model, tuple(inputs), False, _dimensions(data))


def render_embed(request: EmbeddingsRequest, vectors: list[list[float]]) -> bytes:
    tokens = sum(count_tokens(text) for text in request.inputs)
    return dumps({"model": request.model, "embeddings": vectors,
                  "total_duration": LOAD_NANOSECONDS + tokens * PROMPT_TOKEN_NANOSECONDS,
                  "load_duration": LOAD_NANOSECONDS, "prompt_eval_count": tokens})


def parse_legacy(data: dict) -> EmbeddingsRequest:
    model = require_str(data, "model")
    prompt = data.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise invalid(f"`prompt` must be a string, not {json_type(prompt)}.", "prompt")
    check_options(data)
    # An empty prompt gets an empty embedding, as Ollama answers it.
    return EmbeddingsRequest(model, (prompt,) if prompt else (), False, _dimensions(data))


def render_legacy(request: EmbeddingsRequest, vectors: list[list[float]]) -> bytes:
    return dumps({"embedding": vectors[0] if vectors else []})


EMBED = EmbeddingsFormat("embed", parse_embed, render_embed)
LEGACY = EmbeddingsFormat("embeddings", parse_legacy, render_legacy)
