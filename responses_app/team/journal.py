"""The request journal: every /v1/ request, recorded off the request path and out of the serving process.

A request only appends a dict to an in-memory queue (a few microseconds). Every
MOCKLLM_JOURNAL_FLUSH_SECONDS a thread hands the queue, as one JSON line, to this process's journal
writer: a child process (`manage.py journalwriter`, journal_store.py) that redacts, inserts in batches
and, once a minute, prunes the table to the newest MOCKLLM_JOURNAL_MAX_ROWS rows and
MOCKLLM_JOURNAL_MAX_DAYS days and expires test runs' canned responses (retention.py).

Why a child process: a writer thread in the server shares the GIL with the event loop. Measured
under load, its inserts cost 2-6 times their single-threaded CPU time and took a quarter of the
server's throughput. Serialising a row for the pipe costs a few microseconds; the rest of the work
runs on another core.

Nothing is lost on the way, and nothing waits for the writer. The pipe is written without blocking,
so a writer that stops reading hangs neither a request nor a journal query. The writer says after
each batch that it is done; if it exits, the next writer is sent every batch it had not finished. If
the queue passes MOCKLLM_JOURNAL_BUFFER entries (the writer cannot keep up or the database is down),
new entries are counted and dropped, with a warning, rather than letting memory grow without bound.
What the database cannot hold costs no other row: a NUL character (which PostgreSQL's text and JSON
cannot hold) is stored as U+FFFD in every column, and a row it still refuses is found by storing the
halves of its batch apart, then logged, counted and left out while the rest is stored.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from responses_app.models import JournalEntry

if TYPE_CHECKING:
    from responses_app.api.record import RequestRecord

logger = logging.getLogger("mockllm.journal")

# The journal's fields are the model's (models.JournalEntry): the writer fills every column but the id,
# the control API answers with all of them (row_json), and its OpenAPI description is derived from them.
FIELDS = tuple(JournalEntry._meta.concrete_fields)
COLUMNS = tuple(field.name for field in FIELDS if not field.primary_key)


def row_json(row: JournalEntry) -> dict[str, Any]:
    """A stored entry as the control API answers it."""
    values = {field.name: field.value_from_object(row) for field in FIELDS}
    values["created_at"] = values["created_at"].isoformat()
    return values


# ---- the serving process's side -----------------------------------------------------------------

class JournalWriter:
    """Queues entries on the request path and ships them to the writer process.

    Nothing here ever blocks on the writer: lines go into its pipe without blocking (what does not fit
    waits for the next round), so a writer that stops reading cannot hang a request or a journal query.
    The writer acknowledges each line once it is stored; a line stays "in flight" until then, and when
    a writer exits, the next one is sent every line still in flight, so nothing handed over is lost.
    """

    # A line in flight when this many writers in a row exited is dropped: it is what kills them.
    MAX_WRITER_EXITS_PER_LINE = 3

    def __init__(self) -> None:
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._send_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._in_flight: collections.deque[tuple[bytes, int]] = collections.deque()  # (line, entries), oldest first
        self._in_flight_entries = 0
        self._unsent = bytearray()  # the end of the in-flight lines that is not in the current writer's pipe yet
        self._acks = b""  # a partly read acknowledgement
        self._acknowledged = 0  # lines the current writer has said are done
        self._exits_at_head = 0  # writers that exited while the oldest line in flight was the same
        self._dropped = 0

    def record(self, row: dict[str, Any]) -> None:
        """Queue one entry; called on the event loop, so it never blocks."""
        if len(self._queue) + self._in_flight_entries >= settings.MOCKLLM_JOURNAL_BUFFER:
            self._dropped += 1
            return
        self._queue.append(row)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mockllm-journal", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while True:
            time.sleep(settings.MOCKLLM_JOURNAL_FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:
                logger.warning("could not hand the request journal to its writer; will retry", exc_info=True)
                time.sleep(1)

    def flush(self) -> int:
        """Hand every queued entry to the writer now, without waiting for it; returns how many were queued."""
        with self._send_lock:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                logger.warning("the request journal fell behind; %d entries were dropped", dropped,
                               extra={"event": "journal_dropped", "dropped": dropped})
            batch = []
            while self._queue:
                batch.append(self._queue.popleft())
            if batch:
                line = encode_batch(batch)
                self._in_flight.append((line, len(batch)))
                self._in_flight_entries += len(batch)
                self._unsent += line
            if self._in_flight:
                self._read_acks()
                self._send()
            return len(batch)

    def _writer(self) -> subprocess.Popen:
        """The running writer; a new one, sent every line still in flight, when the last one exited."""
        child = self._child
        if child is not None and child.poll() is None:
            return child
        if child is not None:
            self._read_acks(final=True)  # what it stored before it exited
            self._note_exit(child)
        child = self._child = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "journalwriter"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=settings.BASE_DIR, env=os.environ.copy(),
            start_new_session=True,
        )
        os.set_blocking(child.stdin.fileno(), False)
        os.set_blocking(child.stdout.fileno(), False)
        self._acks, self._acknowledged = b"", 0
        self._unsent = bytearray(b"".join(line for line, _ in self._in_flight))
        return child

    def _note_exit(self, child: subprocess.Popen) -> None:
        in_flight = self._in_flight_entries
        logger.warning("the journal writer exited (status %s); starting another, which is sent the %d entries "
                       "in flight", child.returncode, in_flight,
                       extra={"event": "journal_writer_restarted", "in_flight": in_flight})
        for pipe in (child.stdin, child.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        if not self._in_flight:
            return
        self._exits_at_head += 1
        if self._exits_at_head >= self.MAX_WRITER_EXITS_PER_LINE:
            _, entries = self._in_flight.popleft()
            self._in_flight_entries -= entries
            self._exits_at_head = 0
            logger.error("%d journal entries were dropped: %d writers in a row exited while writing them", entries,
                         self.MAX_WRITER_EXITS_PER_LINE, extra={"event": "journal_dropped", "dropped": entries})

    def _send(self) -> None:
        """Put as much of the unsent lines into the writer's pipe as it takes now."""
        child = self._writer()
        while self._unsent:
            try:
                written = os.write(child.stdin.fileno(), self._unsent)
            except BlockingIOError:
                return  # the pipe is full: the writer is busy; the rest waits for the next round
            except (BrokenPipeError, OSError):
                return  # the writer exited: the next round starts another and sends it everything in flight
            del self._unsent[:written]

    def _read_acks(self, final: bool = False) -> None:
        """Drop the lines the writer says it has stored: it writes the number of lines done so far."""
        child = self._child
        if child is None or child.stdout.closed:
            return
        while True:
            try:
                chunk = os.read(child.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            except OSError:
                return
            if not chunk:
                break
            self._acks += chunk
            if not final and len(chunk) < 65536:
                break
        *lines, self._acks = self._acks.split(b"\n")
        done = max((int(line) for line in lines if line.strip().isdigit()), default=None)
        if done is None:
            return
        acknowledged, self._acknowledged = done - self._acknowledged, done
        for _ in range(min(acknowledged, len(self._in_flight))):
            _, entries = self._in_flight.popleft()
            self._in_flight_entries -= entries
            self._exits_at_head = 0

    def close(self) -> None:
        """At exit: send what is queued and let the writer finish (a few seconds at most)."""
        deadline = time.monotonic() + 10
        try:
            self.flush()
            while self._unsent and time.monotonic() < deadline:
                time.sleep(0.02)
                self.flush()
        except Exception:  # noqa: BLE001 (nothing more can be done at exit)
            pass
        child = self._child
        if child is not None and child.poll() is None:
            child.stdin.close()  # the writer stores what it has, then exits
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


def encode_batch(batch: list[dict[str, Any]]) -> bytes:
    """A batch as one JSON line; a row that cannot be encoded (a lone surrogate in a text) is sent with
    its texts made encodable, so it costs no other row."""
    try:
        return orjson.dumps(batch, default=str) + b"\n"
    except TypeError:
        rows = []
        for row in batch:
            try:
                orjson.dumps(row, default=str)
            except TypeError:
                row = map_texts(row, lambda text: text.encode("utf-8", "replace").decode("utf-8"))
            rows.append(row)
        return orjson.dumps(rows, default=str) + b"\n"


def map_texts(value: Any, change: Any) -> Any:
    """`value` with `change` applied to every string in it, dictionary keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [map_texts(item, change) for item in value]
    if isinstance(value, dict):
        return {map_texts(key, change): map_texts(item, change) for key, item in value.items()}
    return value


journal = JournalWriter()


def _text(value: Any, limit: int) -> str:
    return str(value)[:limit] if value is not None else ""


def record_request(request: HttpRequest, record: RequestRecord, response: HttpResponseBase, duration_ms: float) -> None:
    """Queue the journal entry for a finished /v1/ request, from its record (api/record.py)."""
    client = record.client
    matched = record.matched
    provider = record.provider.NAME if record.provider is not None and record.endpoint is not None else None
    journal.record({
        "created_at": record.received_at,
        "request_id": record.request_id,
        "test_id": client.test_id,
        "scenario": client.scenario,
        "api_key_name": client.key_name,
        "method": (request.method or "")[:10],
        "path": request.path[:300],
        "provider": _text(provider, 20),
        "endpoint": _text(record.endpoint, 40),
        "model": _text(record.model, 200),
        "stream": bool(record.stream),
        "status": response.status_code,
        "matched": isinstance(matched, int),
        "entry_id": matched if isinstance(matched, int) else None,
        "match_rule": _text(record.match.rule if record.match else None, 20),
        "near_misses": list(record.match.near_misses) if record.match else [],
        "prompt": record.prompt,
        "stream_end": _text(record.stream_end, 40),
        "duration_ms": duration_ms,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "headers": {k: v for k, v in request.META.items() if k.startswith("HTTP_") or k == "CONTENT_TYPE"},
        "body": record.body[:settings.MOCKLLM_JOURNAL_BODY_BYTES].decode("utf-8", "replace"),
    })
