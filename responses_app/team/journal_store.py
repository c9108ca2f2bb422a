"""The journal writer process's side (`manage.py journalwriter`, started by each server process; see
journal.py): it reads batches from its standard input, redacts, stores them, and says after each one
that it is done."""
from __future__ import annotations

import datetime
import itertools
import logging
import time
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.db import DataError, IntegrityError, connections, transaction

from responses_app.models import JournalEntry
from responses_app.team.journal import COLUMNS, map_texts
from responses_app.team.redaction import redact_text, request_headers
from responses_app.team.retention import expire_test_runs, prune

logger = logging.getLogger("mockllm.journal")

ROWS_PER_STATEMENT = 250  # 23 columns: 5,750 parameters, within SQLite's and PostgreSQL's limits
PRUNE_EVERY_SECONDS = 60.0


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def storable(value: Any) -> Any:
    """PostgreSQL's text and JSON cannot hold NUL: every NUL in a text, a JSON value or a key becomes
    U+FFFD (on every database alike, so the journal reads the same everywhere)."""
    return map_texts(value, lambda text: text.replace("\x00", "\ufffd") if "\x00" in text else text)


# How a queued value becomes a column value, where it is not stored as it is: secrets redacted in every
# text a client chose (a key sent as the model name shows in the model, the path and the near misses too),
# JSON columns serialised.
ADAPT = {
    "model": redact_text,
    "path": redact_text,
    "near_misses": lambda hints: _json([redact_text(hint) for hint in hints]),
    "prompt": redact_text,
    "headers": lambda headers: _json(request_headers(headers)),
    "body": redact_text,
}


def _values(row: dict[str, Any], adapt: dict[str, Any], nul_free: bool) -> tuple:
    """A queued row as column values, in COLUMNS order."""
    if not nul_free:
        row = {name: storable(value) for name, value in row.items()}
    return tuple(adapt[name](row[name]) if name in adapt else row[name] for name in COLUMNS)


def insert(batch: list[dict[str, Any]], nul_free: bool = False) -> None:
    """One transaction of COPY (PostgreSQL) or multi-row INSERTs (SQLite): Django's bulk_create costs
    ~110 us a row in model and field handling. `nul_free`: no text in the batch holds a NUL (its JSON
    line has no \\u0000), so none needs replacing."""
    connection = connections[JournalEntry.objects.db]
    quote = connection.ops.quote_name
    table = quote(JournalEntry._meta.db_table)
    columns = ", ".join(quote(JournalEntry._meta.get_field(name).column) for name in COLUMNS)
    row_marks = f"({', '.join(['%s'] * len(COLUMNS))})"
    adapt_datetime = connection.ops.adapt_datetimefield_value
    adapt = {**ADAPT, "created_at": lambda moment: adapt_datetime(datetime.datetime.fromisoformat(moment))}
    with transaction.atomic(using=JournalEntry.objects.db), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # COPY: a third of the CPU of parameterised INSERTs
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(_values(row, adapt, nul_free))
            return
        for start in range(0, len(batch), ROWS_PER_STATEMENT):
            part = batch[start:start + ROWS_PER_STATEMENT]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES "
                           + ", ".join([row_marks] * len(part)),
                           [value for row in part for value in _values(row, adapt, nul_free)])


# Errors that say a row cannot be stored, whatever the state of the database: a value the column cannot
# hold, or a row that is not a journal row. Any other error (the database restarting, a lost
# connection) is waited out and the row tried again.
ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, DataError, IntegrityError, ValueError, TypeError, KeyError,
              AttributeError)


class Store:
    """Stores batches; a row the database refuses is logged, counted and left out, and costs no other row."""

    def __init__(self) -> None:
        self.refused = 0

    def batch(self, batch: Any, nul_free: bool = False) -> None:
        self._rows(batch if isinstance(batch, list) else [batch], nul_free)

    def _rows(self, rows: list[Any], nul_free: bool = False) -> None:
        """Store `rows`; when the database refuses them, store each half apart, down to the single rows it
        refuses: one bad row in a batch of 5,000 costs some 25 inserts, not 5,000."""
        error = self._insert(rows, nul_free)
        if error is None:
            return
        if len(rows) == 1:
            self._refuse(rows[0], error)
            return
        middle = len(rows) // 2
        self._rows(rows[:middle], nul_free)
        self._rows(rows[middle:], nul_free)

    def _insert(self, rows: list[Any], nul_free: bool = False) -> BaseException | None:
        """Insert, waiting out a database that does not answer; the error when the rows cannot be stored."""
        for attempt in itertools.count():
            try:
                insert(rows, nul_free)
                return None
            except ROW_ERRORS as exc:
                connections.close_all()  # a failed COPY leaves its connection in no state to reuse
                return exc
            except Exception:  # the database may be restarting: keep the rows, try again
                logger.warning("could not write %d journal entries; retrying", len(rows), exc_info=True,
                               extra={"event": "journal_write_retry"})
                connections.close_all()
                time.sleep(min(10, 0.5 * (attempt + 1)))
        raise AssertionError("unreachable")

    def _refuse(self, row: Any, error: BaseException) -> None:
        self.refused += 1
        fields = row if isinstance(row, dict) else {}
        logger.error("a journal entry could not be stored and was left out (%s: %s)", type(error).__name__,
                     str(error)[:300], extra={
                         "event": "journal_row_refused", "request_id": str(fields.get("request_id", ""))[:64],
                         "test_id": str(fields.get("test_id", ""))[:200], "refused_total": self.refused})


def write_from(stream: Any, acknowledge: Any = None) -> None:
    """The writer's loop: one JSON line (a batch) at a time until the server closes the pipe. After each
    line, `acknowledge(n)` is told how many lines are done (stored, or left out as unstorable)."""
    store = Store()
    last_prune = 0.0
    for done, line in enumerate(stream, 1):
        if line.strip():
            try:
                batch = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                store.refused += 1
                logger.error("a journal batch was not JSON and was left out: %s", exc,
                             extra={"event": "journal_row_refused", "refused_total": store.refused})
            else:  # JSON holds a NUL only as the escape \\u0000 (the u is always lower-case)
                store.batch(batch, nul_free=(b"\\u0000" if isinstance(line, bytes) else "\\u0000") not in line)
        if acknowledge is not None:
            acknowledge(done)
        if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
            last_prune = time.monotonic()
            try:
                prune(settings.MOCKLLM_JOURNAL_MAX_ROWS, settings.MOCKLLM_JOURNAL_MAX_DAYS)
                expire_test_runs(settings.MOCKLLM_TEST_RUN_MAX_HOURS)
            except Exception:
                logger.warning("could not prune the request journal or expire old test runs", exc_info=True)
