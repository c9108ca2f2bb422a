"""The request journal: every /v1/ request, recorded off the request path.

A request only appends a dict to an in-memory queue (a few microseconds). One background thread
per process writes the queue to the database in batches every MOCKLLM_JOURNAL_FLUSH_SECONDS (or
sooner when a batch fills), and prunes the table to the newest MOCKLLM_JOURNAL_MAX_ROWS rows and
MOCKLLM_JOURNAL_MAX_DAYS days once a minute. If the database is unavailable the queue waits, up to
MOCKLLM_JOURNAL_BUFFER entries; beyond that new entries are counted and dropped, with a warning,
rather than letting memory grow without bound.
"""
from __future__ import annotations

import atexit
import collections
import datetime
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from .redaction import redact_text, request_headers

logger = logging.getLogger("mockllm.journal")

BATCH_SIZE = 500
PRUNE_EVERY_SECONDS = 60.0


def prune(max_rows: int, max_days: float) -> int:
    """Delete journal rows beyond the newest `max_rows` or older than `max_days` (0: no limit)."""
    from .models import JournalEntry

    deleted = 0
    if max_days:
        cutoff = timezone.now() - datetime.timedelta(days=max_days)
        deleted += JournalEntry.objects.filter(created_at__lt=cutoff).delete()[0]
    if max_rows:
        boundary = JournalEntry.objects.order_by("-id").values_list("id", flat=True)[max_rows:max_rows + 1].first()
        if boundary is not None:
            deleted += JournalEntry.objects.filter(id__lte=boundary).delete()[0]
    return deleted


class JournalWriter:
    def __init__(self) -> None:
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._last_prune = 0.0

    def record(self, row: dict[str, Any]) -> None:
        """Queue one entry; called on the event loop, so it never touches the database."""
        if len(self._queue) >= settings.MOCKLLM_JOURNAL_BUFFER:
            self._dropped += 1
            return
        self._queue.append(row)
        if self._thread is None:
            self._start()
        if len(self._queue) >= BATCH_SIZE:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mockllm-journal", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.MOCKLLM_JOURNAL_FLUSH_SECONDS)
            self._wake.clear()
            try:
                if self.flush() and time.monotonic() - self._last_prune > PRUNE_EVERY_SECONDS:
                    self._last_prune = time.monotonic()
                    prune(settings.MOCKLLM_JOURNAL_MAX_ROWS, settings.MOCKLLM_JOURNAL_MAX_DAYS)
            except Exception:  # the database may be restarting: keep the queue, try again
                logger.warning("could not write the request journal; will retry", exc_info=True)
                close_old_connections()
                time.sleep(1)

    def flush(self) -> int:
        """Write every queued entry now; returns how many were written. Safe from any thread but the event loop."""
        from .models import JournalEntry

        written = 0
        with self._flush_lock:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                logger.warning("the request journal fell behind; %d entries were dropped", dropped,
                               extra={"event": "journal_dropped", "dropped": dropped})
            while self._queue:
                batch = []
                while self._queue and len(batch) < BATCH_SIZE:
                    batch.append(self._queue.popleft())
                try:
                    JournalEntry.objects.bulk_create([_entry(row) for row in batch])
                except Exception:
                    self._queue.extendleft(reversed(batch))  # keep them for the next attempt
                    raise
                written += len(batch)
        if written and threading.current_thread() is self._thread:
            for connection in connections.all(initialized_only=True):
                connection.close_if_unusable_or_obsolete()
        return written

    def pending(self) -> int:
        return len(self._queue)


journal = JournalWriter()


def _entry(row: dict[str, Any]) -> Any:
    """The row queued on the request path, finished here in the writer thread: headers redacted, body decoded."""
    from .models import JournalEntry

    limit = settings.MOCKLLM_JOURNAL_BODY_BYTES
    return JournalEntry(**{**row, "headers": request_headers(row["headers"]), "prompt": redact_text(row["prompt"]),
                           "body": redact_text(row["body"][:limit].decode("utf-8", "replace"))})


def _text(value: Any, limit: int) -> str:
    return str(value)[:limit] if value is not None else ""


def record_request(request: HttpRequest, response: HttpResponseBase, duration_ms: float) -> None:
    """Queue the journal entry for a finished /v1/ request."""
    fields = getattr(request, "log_fields", {})
    client = getattr(request, "client", None)
    matched = fields.get("matched")
    journal.record({
        "created_at": getattr(request, "received_at", None) or timezone.now(),
        "request_id": getattr(request, "request_id", ""),
        "test_id": client.test_id if client else "",
        "scenario": client.scenario if client else "",
        "api_key_name": client.key_name if client else "",
        "method": request.method or "",
        "path": request.path[:300],
        "provider": _text(fields.get("provider"), 20),
        "endpoint": _text(fields.get("endpoint"), 40),
        "model": _text(fields.get("model"), 200),
        "stream": bool(fields.get("stream")),
        "status": response.status_code,
        "matched": isinstance(matched, int),
        "entry_id": matched if isinstance(matched, int) else None,
        "match_rule": _text(fields.get("match_rule"), 20),
        "near_misses": list(fields.get("near_misses", ())),
        "prompt": getattr(request, "journal_prompt", ""),
        "stream_end": _text(fields.get("stream_end"), 40),
        "duration_ms": duration_ms,
        "input_tokens": fields.get("input_tokens"),
        "output_tokens": fields.get("output_tokens"),
        "headers": {k: v for k, v in request.META.items() if k.startswith("HTTP_") or k == "CONTENT_TYPE"},
        "body": getattr(request, "_body", b"") or b"",
    })
