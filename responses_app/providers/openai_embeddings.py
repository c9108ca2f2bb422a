"""The OpenAI embeddings wire format (POST /v1/embeddings), with deterministic vectors.

A vector is derived from the words of its text by feature hashing: each word adds +1 or -1 to a few
positions chosen by a hash of the word, and the sum is scaled to unit length. The same text always
gives the same vector, and texts that share words point in similar directions, so similarity search
behaves plausibly. An entry of the responses file can fix the vector for a text (`embedding:`).
"""
from __future__ import annotations

import base64
import hashlib
import math
import struct
from dataclasses import dataclass

from django.conf import settings

from responses_app.canned.tokens import count_tokens
from responses_app.providers.common import dumps, invalid, json_type, optional_int, require_str
from responses_app.providers.openai_chat import render_error

NAME = "openai"
ENDPOINT = "embeddings"
POSITIONS_PER_WORD = 8
MAX_DIMENSIONS = 16384
__all__ = ["render_error", "parse", "render_json", "vector_for"]


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]
    base64: bool
    dimensions: int


def _as_text(item: object, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
        return " ".join(str(t) for t in item)  # token ids
    raise invalid(f"`{where}` must be a string or an array of token ids, not {json_type(item)}.", where)


def parse(data: dict) -> EmbeddingsRequest:
    model = require_str(data, "model")
    raw = data.get("input")
    if raw is None:
        raise invalid("`input` is required.", "input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
        inputs = [_as_text(raw, "input")]
    elif isinstance(raw, list) and raw:
        inputs = [_as_text(item, f"input[{i}]") for i, item in enumerate(raw)]
    else:
        raise invalid("`input` must be a string or a non-empty array.", "input")
    encoding = data.get("encoding_format", "float")
    if encoding not in ("float", "base64", None):
        raise invalid("`encoding_format` must be \"float\" or \"base64\".", "encoding_format")
    dimensions = optional_int(data, "dimensions", minimum=1, maximum=MAX_DIMENSIONS) or settings.MOCKLLM_EMBEDDING_DIMENSIONS
    return EmbeddingsRequest(model, tuple(inputs), encoding == "base64", dimensions)


def vector_for(text: str, dimensions: int) -> list[float]:
    """The deterministic unit vector of `text` (see the module docstring)."""
    values = [0.0] * dimensions
    words = [piece.lower() for piece in text.split()] or ["\x00empty"]
    for word in words:
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=64).digest()
        for k in range(POSITIONS_PER_WORD):
            chunk = int.from_bytes(digest[k * 8:(k + 1) * 8], "little")
            values[chunk % dimensions] += 1.0 if (chunk >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def render_json(request: EmbeddingsRequest, vectors: list[list[float]]) -> bytes:
    data = []
    for index, vector in enumerate(vectors):
        value: object = vector
        if request.base64:  # little-endian float32, as the SDKs decode it
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(count_tokens(text) for text in request.inputs)
    return dumps({"object": "list", "data": data, "model": request.model,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
