"""The only code that turns a responses file into rows.

`loadresponses`, the file watcher and the tests all call `load_responses_file`. A file is parsed and
validated whole (responses_file.py) before anything is written, and written in one transaction, so a bad
file changes nothing and a request never sees half of an old file and half of a new one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections, transaction
from django.utils import timezone

from responses_app.canned.responses_file import (
    MAX_ERRORS_SHOWN,
    ParsedResponses,
    Problem,
    ResponsesFileError,
    parse_responses,
)
from responses_app.models import CannedResponse, ResponseSet, SetVersion, Source

logger = logging.getLogger("mockllm.loading")


@dataclass
class LoadSummary:
    path: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    admin_kept: list[str] = field(default_factory=list)  # prompts where an admin edit won over the file
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = (
            f"Loaded {self.path}: {self.added} added, {self.updated} updated, "
            f"{self.removed} removed, {self.unchanged} unchanged"
        )
        if self.admin_kept:
            text += f"; {len(self.admin_kept)} admin edit(s) kept over the file"
        return text


def read_stable(path: Path, *, settle_seconds: float = 0.0, attempts: int = 5) -> str:
    """Read a file; with settle_seconds, re-read until two reads agree (a writer may be mid-write)."""
    text = path.read_text(encoding="utf-8")
    for _ in range(attempts if settle_seconds else 0):
        time.sleep(settle_seconds)
        again = path.read_text(encoding="utf-8")
        if again == text:
            return text
        text = again
    if settle_seconds:
        raise ResponsesFileError(str(path), [Problem(0, 0, "the file kept changing while it was read")])
    return text


def read_responses_file(path: Path, *, settle_seconds: float = 0.0) -> tuple[str, ParsedResponses]:
    """Read and validate a responses file; ResponsesFileError says what is wrong with it."""
    try:
        text = read_stable(path, settle_seconds=settle_seconds)
    except FileNotFoundError:
        raise ResponsesFileError(str(path), [Problem(0, 0, "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise ResponsesFileError(str(path), [Problem(0, 0, f"the file is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ResponsesFileError(str(path), [Problem(0, 0, f"cannot read the file: {exc.strerror}")]) from None
    return text, parse_responses(text, str(path))


def load_responses_file(path: str | Path, *, settle_seconds: float = 0.0) -> LoadSummary:
    """Validate the file at `path` and write it into the database in one transaction.

    On any problem, raise ResponsesFileError, record it as the set's last error, and change nothing.
    """
    resolved = Path(path).expanduser().resolve()
    try:
        _, parsed = read_responses_file(resolved, settle_seconds=settle_seconds)
    except ResponsesFileError as exc:
        record_load_error(exc)
        raise
    return write_responses(parsed, str(resolved))


def signs_of_a_cut(parsed: ParsedResponses, source_file: str) -> str:
    """What makes loading `parsed` from `source_file` look like loading that file cut short while it is
    being written, or "" when nothing does.

    A file caught mid-write is the start of the finished one: it lacks what comes after the cut. When
    the cut falls between lines it parses, and its load would delete the file's last entries (and
    perhaps lose settings) only to add them back a moment later. So a load is suspect when it drops more
    of the file's last entries than it puts in their place, or loses a setting. Renaming, removing or
    adding entries anywhere else, or renaming the last one, is not what a cut looks like.
    """
    rows = CannedResponse.objects.filter(source_file=source_file, scenario="", test_id="")
    stored = list(rows.order_by("position", "id").values_list("key_digest", "source"))
    known = {digest for digest, _ in stored}  # the file's rows, the admin's edits of them included
    old = [digest for digest, source in stored if source == Source.FILE]  # the rows a load may delete
    new = [entry.digest for entry in parsed.entries]
    kept = set(new)
    last_kept = max((i for i, digest in enumerate(old) if digest in kept), default=-1)
    dropped = len(old) - 1 - last_kept  # the file's last entries that the load deletes
    if dropped:
        last_known = max((i for i, digest in enumerate(new) if digest in known), default=-1)
        added = len(new) - 1 - last_known  # the new entries after the last one the file had before
        if dropped > added:
            instead = f" for {added} new one{'s' if added != 1 else ''}" if added else ""
            return f"it drops the file's last {dropped} entr{'ies' if dropped != 1 else 'y'}{instead}"
    if parsed.settings is not None:
        lost = _key_paths(ResponseSet.get().settings or {}) - _key_paths(parsed.settings)
        if lost:
            return "it loses the setting " + ", ".join(sorted(".".join(path) for path in lost)[:3])
    return ""


def _key_paths(settings: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths = set()
    for key, value in settings.items():
        paths.add((*prefix, str(key)))
        if isinstance(value, dict):
            paths |= _key_paths(value, (*prefix, str(key)))
    return paths


def record_load_error(exc: ResponsesFileError) -> None:
    logger.error(
        "responses file rejected; the last good answers stay in place",
        extra={
            "event": "load_failed",
            "file": exc.path,
            "line": exc.problems[0].line if exc.problems else 0,
            "column": exc.problems[0].column if exc.problems else 0,
            "problems": [p.describe(exc.path) for p in exc.problems[:MAX_ERRORS_SHOWN]],
        },
    )
    ResponseSet.get()  # make sure the row exists
    ResponseSet.objects.filter(pk=ResponseSet.SINGLETON_ID).update(
        last_error=str(exc), last_error_at=timezone.now()
    )


def _update_rows(rows: list[CannedResponse], fields: list[str]) -> None:
    """UPDATE each row's `fields` in one executemany: Django's bulk_update builds a CASE expression per
    batch, which took 27 s for 30,000 rows on SQLite; this takes well under a second."""
    if not rows:
        return
    connection = connections[CannedResponse.objects.db]
    model_fields = [CannedResponse._meta.get_field(name) for name in fields]
    table = connection.ops.quote_name(CannedResponse._meta.db_table)
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in model_fields)
    params = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in model_fields] + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s", params)


def write_responses(parsed: ParsedResponses, source_file: str) -> LoadSummary:
    """Bring the rows that came from `source_file` in line with `parsed`, in one transaction."""
    summary = LoadSummary(path=source_file, warnings=parsed.warnings)
    with transaction.atomic():
        response_set, _ = ResponseSet.objects.select_for_update().get_or_create(pk=ResponseSet.SINGLETON_ID)
        existing = {
            row.key_digest: row
            for row in CannedResponse.objects.filter(scenario="", test_id="").only(
                "id", "prompt", "key_digest", "answer", "options", "position", "source", "source_file", "file_answer"
            )
        }
        to_create: list[CannedResponse] = []
        to_update: list[CannedResponse] = []
        note_file_answer: list[CannedResponse] = []
        in_file: set[str] = set()
        for position, entry in enumerate(parsed.entries):
            in_file.add(entry.digest)
            row = existing.get(entry.digest)
            if row is None:
                to_create.append(
                    CannedResponse(
                        prompt=entry.prompt, key_digest=entry.digest, answer=entry.answer, options=entry.options,
                        position=position, source=Source.FILE, source_file=source_file,
                    )
                )
            elif row.source == Source.FILE:
                new = (entry.answer, entry.options, position, source_file)
                if (row.answer, row.options, row.position, row.source_file) != new:
                    row.answer, row.options, row.position, row.source_file = new
                    to_update.append(row)
                else:
                    summary.unchanged += 1
            else:  # an admin row: the admin's reply stands; remember what the file says
                if (row.answer, row.options) != (entry.answer, entry.options):
                    summary.admin_kept.append(entry.prompt)
                else:
                    summary.unchanged += 1
                if row.file_answer != entry.answer or row.source_file != source_file:
                    row.file_answer, row.source_file = entry.answer, source_file
                    note_file_answer.append(row)

        to_delete = []
        for digest, row in existing.items():
            if digest in in_file or row.source_file != source_file:
                continue
            if row.source == Source.FILE:
                to_delete.append(row.id)
            elif row.file_answer is not None:
                row.file_answer = None  # the file no longer mentions this admin row's prompt
                note_file_answer.append(row)

        now = timezone.now()
        for row in to_update:
            row.updated_at = now
        CannedResponse.objects.bulk_create(to_create, batch_size=500)
        _update_rows(to_update, ["answer", "options", "position", "source_file", "updated_at"])
        _update_rows(note_file_answer, ["file_answer", "source_file"])
        for start in range(0, len(to_delete), 500):
            CannedResponse.objects.filter(id__in=to_delete[start : start + 500]).delete()
        summary.added, summary.updated, summary.removed = len(to_create), len(to_update), len(to_delete)

        if parsed.unknown_response is not None:
            response_set.file_unknown_response = parsed.unknown_response
            if response_set.unknown_response_source == Source.FILE:
                response_set.unknown_response = parsed.unknown_response
            elif response_set.unknown_response != parsed.unknown_response:
                summary.admin_kept.append("(default answer)")
        if parsed.settings is not None:
            response_set.settings = parsed.settings
        response_set.last_loaded_at = now
        response_set.last_loaded_file = source_file
        response_set.last_load_summary = str(summary)
        response_set.last_error = ""
        response_set.last_error_at = None
        response_set.save(
            update_fields=[
                "unknown_response", "file_unknown_response", "settings", "last_loaded_at",
                "last_loaded_file", "last_load_summary", "last_error", "last_error_at",
            ]
        )
        SetVersion.bump({("", "")})

    logger.info(
        str(summary),
        extra={
            "event": "responses_loaded", "file": source_file, "added": summary.added,
            "updated": summary.updated, "removed": summary.removed, "unchanged": summary.unchanged,
            "entries": len(parsed.entries),
        },
    )
    for warning in parsed.warnings:
        logger.warning(warning, extra={"event": "entry_shadowed", "file": source_file})
    for prompt in summary.admin_kept:
        logger.warning(
            "the admin's edit of this prompt was kept; the file's answer differs and was not applied "
            "(run `python manage.py dumpresponses` to write the admin's answers back to the file)",
            extra={"event": "admin_edit_kept", "file": source_file, "prompt": prompt[:200]},
        )
    return summary
