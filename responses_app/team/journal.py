"""The request journal: every /v1/ request, recorded off the request path and out of the serving process.

A request only appends a dict to an in-memory queue (a few microseconds). Every
MOCKLLM_JOURNAL_FLUSH_SECONDS a thread hands the queue, as one JSON line, to this process's journal
writer: a child process (`manage.py journalwriter`) that redacts, inserts in batches and, once a minute,
prunes the table to the newest MOCKLLM_JOURNAL_MAX_ROWS rows and MOCKLLM_JOURNAL_MAX_DAYS days and
expires test runs' canned responses (retention.py).

Why a child process: a writer thread in the server shares the GIL with the event loop. Measured
under load, its inserts cost 2-6 times their single-threaded CPU time and took a quarter of the
server's throughput. Serialising a row for the pipe costs a few microseconds; the rest of the work
runs on another core. If the writer dies it is restarted and the batch is sent again; if the queue
passes MOCKLLM_JOURNAL_BUFFER entries (the writer cannot keep up or the database is down), new
entries are counted and dropped, with a warning, rather than letting memory grow without bound.
"""
from __future__ import annotations

import atexit
import collections
import datetime
import logging
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings
from django.db import connections, transaction
from django.http import HttpRequest, HttpResponseBase

from responses_app.models import JournalEntry
from responses_app.team.redaction import redact_text, request_headers
from responses_app.team.retention import expire_test_runs, prune

if TYPE_CHECKING:
    from responses_app.api.record import RequestRecord

logger = logging.getLogger("mockllm.journal")

ROWS_PER_STATEMENT = 250  # 23 columns: 5,750 parameters, within SQLite's and PostgreSQL's limits
PRUNE_EVERY_SECONDS = 60.0
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
    """Queues entries on the request path and ships them to the writer process."""

    def __init__(self) -> None:
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._send_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._dropped = 0

    def record(self, row: dict[str, Any]) -> None:
        """Queue one entry; called on the event loop, so it never blocks."""
        if len(self._queue) >= settings.MOCKLLM_JOURNAL_BUFFER:
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

    def _writer(self) -> subprocess.Popen:
        if self._child is None or self._child.poll() is not None:
            if self._child is not None:
                logger.warning("the journal writer exited (status %s); starting another", self._child.returncode,
                               extra={"event": "journal_writer_restarted"})
            self._child = subprocess.Popen(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "journalwriter"],
                stdin=subprocess.PIPE, cwd=settings.BASE_DIR, env=os.environ.copy(), start_new_session=True,
            )
        return self._child

    def flush(self) -> int:
        """Send every queued entry to the writer now; returns how many were sent."""
        with self._send_lock:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                logger.warning("the request journal fell behind; %d entries were dropped", dropped,
                               extra={"event": "journal_dropped", "dropped": dropped})
            batch = []
            while self._queue:
                batch.append(self._queue.popleft())
            if not batch:
                return 0
            line = orjson.dumps(batch, default=str) + b"\n"
            try:
                child = self._writer()
                child.stdin.write(line)
                child.stdin.flush()
            except (BrokenPipeError, OSError):
                self._queue.extendleft(reversed(batch))  # the writer died: the next round restarts it
                raise
            return len(batch)

    def close(self) -> None:
        """At exit: send what is queued and let the writer finish."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 (nothing more can be done at exit)
            pass
        child = self._child
        if child is not None and child.poll() is None:
            child.stdin.close()  # the writer stores what it has, then exits
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


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
        "method": request.method or "",
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


# ---- the writer process's side (manage.py journalwriter) --------------------------------------------

def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# How a queued value becomes a column value, where it is not stored as it is: secrets redacted, JSON
# columns serialised.
ADAPT = {
    "near_misses": _json,
    "prompt": redact_text,
    "headers": lambda headers: _json(request_headers(headers)),
    "body": redact_text,
}


def _values(row: dict[str, Any], adapt_datetime: Any) -> tuple:
    """A queued row as column values, in COLUMNS order."""
    adapt = {**ADAPT, "created_at": lambda moment: adapt_datetime(datetime.datetime.fromisoformat(moment))}
    return tuple(adapt[name](row[name]) if name in adapt else row[name] for name in COLUMNS)


def insert(batch: list[dict[str, Any]]) -> None:
    """One transaction of COPY (PostgreSQL) or multi-row INSERTs (SQLite): Django's bulk_create costs
    ~110 us a row in model and field handling."""
    connection = connections[JournalEntry.objects.db]
    quote = connection.ops.quote_name
    table = quote(JournalEntry._meta.db_table)
    columns = ", ".join(quote(JournalEntry._meta.get_field(name).column) for name in COLUMNS)
    row_marks = f"({', '.join(['%s'] * len(COLUMNS))})"
    adapt = connection.ops.adapt_datetimefield_value
    with transaction.atomic(using=JournalEntry.objects.db), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # COPY: a third of the CPU of parameterised INSERTs
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(_values(row, adapt))
            return
        for start in range(0, len(batch), ROWS_PER_STATEMENT):
            part = batch[start:start + ROWS_PER_STATEMENT]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES "
                           + ", ".join([row_marks] * len(part)),
                           [value for row in part for value in _values(row, adapt)])


def write_from(stream: Any) -> None:
    """The writer's loop: one JSON line (a batch) at a time until the server closes the pipe."""
    last_prune = 0.0
    for line in stream:
        if not line.strip():
            continue
        batch = orjson.loads(line)
        for attempt in range(30):
            try:
                insert(batch)
                break
            except Exception:  # the database may be restarting: keep the batch, try again
                logger.warning("could not write %d journal entries; retrying", len(batch), exc_info=True)
                connections.close_all()
                time.sleep(min(10, 0.5 * (attempt + 1)))
        else:
            logger.error("gave up on %d journal entries", len(batch), extra={"event": "journal_dropped"})
        if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
            last_prune = time.monotonic()
            try:
                prune(settings.MOCKLLM_JOURNAL_MAX_ROWS, settings.MOCKLLM_JOURNAL_MAX_DAYS)
                expire_test_runs(settings.MOCKLLM_TEST_RUN_MAX_HOURS)
            except Exception:
                logger.warning("could not prune the request journal or expire old test runs", exc_info=True)
