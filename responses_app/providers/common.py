"""What both wire formats share: the request error type, body parsing and small validators."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from rest_framework.exceptions import APIException

from responses_app.canned.conversation import Tool


class APIError(APIException):
    """An error answered in the provider's error shape with this status, message and param."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        error_type: str | None = None, details: dict | None = None,
    ) -> None:
        super().__init__(detail=message)
        self.status_code = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type
        self.details = details  # Anthropic's `error.details` (its `error_code` picks the SDK's error class)


def invalid(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param)


def parse_tools(data: dict, read_tool: Callable[[dict], tuple[Any, Any] | None], where: str) -> tuple[Tool, ...]:
    """The request's `tools` as (name, JSON schema) pairs; `read_tool` knows the format's shape of one
    tool, and `where` how the format writes the index of a bad one in `param` ("tools[{i}]")."""
    tools = data.get("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise invalid("`tools` must be an array.", "tools")
    parsed = []
    for i, tool in enumerate(tools):
        found = read_tool(tool) if isinstance(tool, dict) else None
        if found is None or not isinstance(found[0], str):
            param = where.format(i=i)
            raise invalid(f"`{param}` must be a tool with a name.", param)
        parsed.append(Tool(found[0], found[1] if isinstance(found[1], dict) else {}))
    return tuple(parsed)


def parse_json_object(raw: bytes, *, lists: bool = False) -> dict | list:
    """The JSON object in a request body (or, with `lists`, a JSON list: the control API's bulk forms);
    any failure is a 400 that says what was wrong."""
    if not raw.strip():
        raise invalid("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}") from None
    if isinstance(data, dict) or (lists and isinstance(data, list)):
        return data
    raise invalid(f"The request body must be a JSON object{' or list' if lists else ''}, not {json_type(data)}.")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def require_str(data: dict, key: str, param: str | None = None) -> str:
    value = data.get(key)
    if value is None:
        raise invalid(f"`{param or key}` is required.", param or key)
    if not isinstance(value, str):
        raise invalid(f"`{param or key}` must be a string, not {json_type(value)}.", param or key)
    return value


def require_list(data: dict, key: str) -> list:
    """A required, non-empty array such as `messages`."""
    value = data.get(key)
    if value is None:
        raise invalid(f"`{key}` is required.", key)
    if not isinstance(value, list) or not value:
        raise invalid(f"`{key}` must be a non-empty array.", key)
    return value


def optional_bool(data: dict, key: str, param: str | None = None) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"`{param or key}` must be a boolean (true or false), not {json_type(value)}.", param or key)
    return value


def optional_int(data: dict, key: str, *, minimum: int, maximum: int | None = None, required: bool = False) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            raise invalid(f"`{key}` is required.", key)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"`{key}` must be an integer, not {json_type(value)}.", key)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise invalid(f"`{key}` must be {bounds}; got {value}.", key)
    return value


@dataclass(frozen=True, slots=True)
class ResponseIds:
    """The ids and timestamp one answer carries, the same on every chunk of a stream."""

    response_id: str
    created: int
    latency_ms: int = 0  # how long the answer takes when paced (Bedrock's `metrics.latencyMs`)


class RandomHex:
    """Random hex digits from the operating system's generator (as secrets.token_hex), drawn 4 KiB at a
    time rather than with one system call per id: ids are made on every request. A forked child starts
    with an empty pool, so that no two processes hand out the same digits."""

    def __init__(self, pool_bytes: int = 4096) -> None:
        self._pool_bytes = pool_bytes
        self._pool, self._at = "", 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._empty)

    def _empty(self) -> None:
        self._pool, self._at = "", 0

    def take(self, nbytes: int) -> str:
        with self._lock:
            at, end = self._at, self._at + 2 * nbytes
            if end > len(self._pool):
                self._pool, at, end = os.urandom(max(self._pool_bytes, nbytes)).hex(), 0, 2 * nbytes
            self._at = end
            return self._pool[at:end]


random_hex = RandomHex()


def make_ids(prefix: str, length: int = 24) -> ResponseIds:
    return ResponseIds(prefix + random_hex.take(length // 2), int(time.time()))


def new_request_id() -> str:
    return "req_" + random_hex.take(12)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
