"""The pieces a stream sends an answer in, and how long they take at a configured pace."""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

TOKEN_PIECES = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")
WORD_PIECES = re.compile(r"\s*\S+|\s+")


def split_text(text: str, chunk: Any = "char") -> list[str]:
    """The pieces a stream sends `text` in: characters (the default), words, tokens or N characters.
    Joined, they are always the text again."""
    if chunk == "word":
        return WORD_PIECES.findall(text)
    if chunk == "token":
        return TOKEN_PIECES.findall(text)
    if isinstance(chunk, int) and chunk > 1:
        return [text[at:at + chunk] for at in range(0, len(text), chunk)]
    return list(text)


_ENCODED: dict[str, bytes] = {}  # single characters as JSON strings, as they are met
_ENCODED_MAX = 4096
CACHED_TEXT_CHARACTERS = 4096  # json_pieces remembers the pieces of texts up to this long (canned answers)


def json_pieces(text: str, chunk: Any = "char") -> Sequence[bytes]:
    """split_text's pieces, each as the JSON string a stream event splices in (orjson's bytes for it).
    A canned answer is streamed again and again: the pieces of the last 1,024 texts of up to
    CACHED_TEXT_CHARACTERS are remembered, whole."""
    if worth_remembering(text, chunk):
        return _remembered_pieces(text, chunk)
    return _encode_pieces(text, chunk)


def worth_remembering(text: str, chunk: Any) -> bool:
    """Whether what a stream makes of `text` is kept for the next time (a canned answer's length, and a
    chunking that can be a cache key)."""
    return len(text) <= CACHED_TEXT_CHARACTERS and isinstance(chunk, (str, int))


@functools.lru_cache(maxsize=1024)
def _remembered_pieces(text: str, chunk: Any) -> tuple[bytes, ...]:
    return tuple(_encode_pieces(text, chunk))


def _encode_pieces(text: str, chunk: Any) -> list[bytes]:
    """Single characters come from a cache, so a stream of one character per event encodes nothing new."""
    encoded = []
    for piece in split_text(text, chunk):
        json_piece = _ENCODED.get(piece)
        if json_piece is None:
            json_piece = orjson.dumps(piece)
            if len(piece) == 1 and len(_ENCODED) < _ENCODED_MAX:
                _ENCODED[piece] = json_piece
        encoded.append(json_piece)
    return encoded


def stream_seconds(timing: Mapping[str, Any], pieces: int, characters: int, tokens: int) -> float:
    """How long the answer takes to come out at the configured pace (after the time to first token)."""
    if timing.get("chunks_per_second"):
        return pieces / timing["chunks_per_second"]
    if timing.get("characters_per_second"):
        return characters / timing["characters_per_second"]
    if timing.get("tokens_per_second"):
        return tokens / timing["tokens_per_second"]
    return 0.0
