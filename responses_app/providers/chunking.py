"""The pieces a stream sends an answer in, and how long they take at a configured pace."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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


def stream_seconds(timing: Mapping[str, Any], pieces: int, characters: int, tokens: int) -> float:
    """How long the answer takes to come out at the configured pace (after the time to first token)."""
    if timing.get("chunks_per_second"):
        return pieces / timing["chunks_per_second"]
    if timing.get("characters_per_second"):
        return characters / timing["characters_per_second"]
    if timing.get("tokens_per_second"):
        return tokens / timing["tokens_per_second"]
    return 0.0
