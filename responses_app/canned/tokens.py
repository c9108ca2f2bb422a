"""Mock token counting: deterministic, offline, and close enough to real tokenizers for tests.

Requests count every message's text, the system prompt, tool calls and results, and tool
definitions (name and JSON schema). A text's count is the sum over its pieces: each run of letters and digits counts one token per
started four characters ("sky" 1, "colour" 2, "Rayleigh" 2), and each other visible character
(punctuation, symbols, emoji) counts one. White space counts nothing.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any

_PIECES = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Tokens in one text, by the rule in this module's docstring; short texts (canned answers, most
    prompts) are counted once and remembered."""
    return _count_short(text) if len(text) <= CACHED_TEXT_MAX else _count(text)


CACHED_TEXT_MAX = 2048  # characters: at most 4096 x 2048 characters are kept


def _count(text: str) -> int:
    return sum((len(piece) + 3) // 4 for piece in _PIECES.findall(text))


_count_short = functools.lru_cache(maxsize=4096)(_count)


def count_all(texts: Iterable[str]) -> int:
    """Tokens in several texts, as if each were counted alone."""
    return sum(count_tokens(text) for text in texts)


def tool_texts(tools: Iterable[Any]) -> list[str]:
    """The text a request's tool definitions add to its input: each name and its JSON schema."""
    return [tool.name + " " + json.dumps(tool.schema, sort_keys=True) for tool in tools]
