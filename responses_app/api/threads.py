"""Server-held conversations: Anthropic's `thread` field (the anthropic SDK's `client.beta.messages.thread()`
and its tool runner send it).

`{"type": "create"}` asks the server to hold the conversation under the answer's id; `{"type": "continue",
"previous_message_id": ...}` sends only the new turn's messages, and the server puts the held ones (with
the thread's `system` and `tools`) before them. The request is then answered as if the whole conversation
had been sent, and the answer is held in turn.

Threads are held in the memory of the process that answered, for THREAD_TTL_SECONDS after their last
turn, for the API key and test run that created them; at most MAX_THREADS of them and MAX_THREAD_BYTES
in all, the oldest forgotten first. A `continue` that finds nothing (expired, forgotten, another
process's or another test run's) is answered as the real API answers a lost thread, a 404 with
`error_code: thread_not_found`, on which the SDK replays the whole conversation with a new thread.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from django.http import HttpResponseBase

from responses_app.api.record import RequestRecord
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match
from responses_app.providers import anthropic_messages
from responses_app.providers.common import APIError, ResponseIds, invalid, json_type

THREAD_TTL_SECONDS = 3600.0
MAX_THREADS = 10_000
MAX_THREAD_BYTES = 256 * 1024 * 1024
HELD_FIELDS = ("system", "tools")  # kept from the turn that created the thread; a `continue` may not send them
CREATE_AGAIN = 'replay the full conversation with `thread: {"type": "create"}`'

Key = tuple[str, str, str]  # API key name, test run, message id


@dataclass(slots=True)
class Held:
    conversation: bytes | None  # JSON: the held fields and every message so far; None once continued
    expires: float
    in_flight: bool = False


class ThreadStore:
    """The held threads of this process, oldest first."""

    def __init__(self, *, ttl: float = THREAD_TTL_SECONDS, max_threads: int = MAX_THREADS,
                 max_bytes: int = MAX_THREAD_BYTES) -> None:
        self.ttl, self.max_threads, self.max_bytes = ttl, max_threads, max_bytes
        self._held: OrderedDict[Key, Held] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def claim(self, key: Key) -> dict[str, Any]:
        """The conversation held under `key`, reserved for the request continuing it; raises the API's errors
        for a thread that is unknown, already continued, or being continued."""
        with self._lock:
            held = self._held.get(key)
            if held is not None and held.expires <= time.monotonic():
                self._forget(key)
                held = None
            if held is None:
                raise APIError(
                    404, f"No thread is held for `thread.previous_message_id` {key[2]!r}: mockllm holds a thread for "
                         f"{self.ttl:.0f} s after its last turn, in the process that answered it, for the same API key "
                         f"and test run. To go on, {CREATE_AGAIN}.",
                    param="thread.previous_message_id", details={"error_code": "thread_not_found"})
            if held.conversation is None:
                raise APIError(
                    400, f"The response {key[2]!r} has already been continued, and each response can be continued "
                         "only once. Continue from the thread's most recent response id.",
                    param="thread.previous_message_id", details={"error_code": "thread_already_continued"})
            if held.in_flight:
                raise APIError(
                    400, f"Another request is still continuing from {key[2]!r}. Wait for it and continue from its "
                         f"response id, or {CREATE_AGAIN}.",
                    param="thread.previous_message_id", details={"error_code": "thread_continue_in_flight"})
            held.in_flight = True
            return orjson.loads(held.conversation)

    def release(self, key: Key) -> None:
        """The request that claimed `key` failed: the thread may be continued from there again."""
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held.in_flight = False

    def keep(self, key: Key, conversation: dict[str, Any], continued: Key | None = None) -> None:
        """Hold `conversation` under `key`; `continued`, the response it went on from, is spent."""
        encoded = orjson.dumps(conversation)
        with self._lock:
            if continued is not None and (spent := self._held.get(continued)) is not None:
                self._bytes -= len(spent.conversation or b"")
                spent.conversation, spent.in_flight = None, False
            self._forget(key)
            self._held[key] = Held(encoded, time.monotonic() + self.ttl)
            self._bytes += len(encoded)
            now = time.monotonic()
            while self._held and (len(self._held) > self.max_threads or self._bytes > self.max_bytes
                                  or next(iter(self._held.values())).expires <= now):
                self._forget(next(iter(self._held)))

    def _forget(self, key: Key) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._bytes -= len(held.conversation or b"")

    def __len__(self) -> int:
        return len(self._held)


store = ThreadStore()


class Turn:
    """One request that carries `thread`: the body to answer (the whole conversation), and, once answered,
    holding the answer. Used as a context manager: a continue that is not answered releases its thread."""

    def __init__(self, record: RequestRecord, body: dict[str, Any], previous: str | None) -> None:
        self.key_prefix = (record.client.key_name, record.client.test_id)
        self.body = body
        self.previous: Key | None = (*self.key_prefix, previous) if previous is not None else None
        self.kept = False

    def __enter__(self) -> Turn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None and not self.kept:
            store.release(self.previous)

    def answered(self, response: HttpResponseBase, request: ChatRequest, match: Match | None,
                 ids: ResponseIds | None) -> None:
        """Hold the conversation with the answer, when there is one (not an error)."""
        if response.status_code != 200 or match is None or ids is None:
            return
        message_id, reply = anthropic_messages.assistant_message(request, match, ids)
        conversation = {field: self.body[field] for field in HELD_FIELDS if self.body.get(field) is not None}
        conversation["messages"] = [*self.body["messages"], reply]
        store.keep((*self.key_prefix, message_id), conversation, self.previous)
        self.kept = True


def start_turn(data: dict[str, Any], record: RequestRecord) -> Turn | None:
    """The turn of an Anthropic messages body with a `thread` field (None without one): for a `continue`,
    the body with the held conversation put before the new messages."""
    thread = data.get("thread")
    if thread is None:
        return None
    if not isinstance(thread, dict) or thread.get("type") not in ("create", "continue"):
        shown = thread.get("type") if isinstance(thread, dict) else json_type(thread)
        raise invalid(f'`thread.type` must be "create" or "continue"; got {shown!r}.', "thread.type")
    body = {name: value for name, value in data.items() if name != "thread"}
    record.notes["thread_turn"] = thread["type"]  # not "thread", a LogRecord attribute
    if thread["type"] == "create":
        return Turn(record, body, None)
    previous = thread.get("previous_message_id")
    if not isinstance(previous, str) or not previous:
        raise invalid("`thread.previous_message_id` is required to continue a thread: the `id` of its latest "
                      "response.", "thread.previous_message_id")
    for name in HELD_FIELDS:
        if data.get(name) is not None:
            raise invalid(f"`{name}` cannot be sent when continuing a thread: the thread keeps the `{name}` it was "
                          f"created with. To change it, {CREATE_AGAIN}.", name)
    messages = data.get("messages", [])
    if not isinstance(messages, list):
        raise invalid(f"`messages` must be an array, not {json_type(messages)}.", "messages")
    turn = Turn(record, body, previous)
    held = store.claim(turn.previous)  # type: ignore[arg-type]  # set for a continue
    turn.body = {**body, **{name: held[name] for name in HELD_FIELDS if name in held},
                 "messages": [*held["messages"], *messages]}
    return turn
