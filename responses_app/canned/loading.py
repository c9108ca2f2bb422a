"""The only code that turns a responses file into rows.

`loadresponses`, the file watcher and the tests all call `load_responses_file`. A file is parsed and
validated whole before anything is written, and written in one transaction, so a bad file changes
nothing and a request never sees half of an old file and half of a new one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import connections, transaction
from django.utils import timezone

from responses_app.canned.entries import entry_digest, parse_entry
from responses_app.canned.fault_schema import parse_failures, parse_model_rules, parse_rate_limits, parse_timing
from responses_app.canned.fields import EntryError, Scalar
from responses_app.canned.matching import Entry, find_shadowed
from responses_app.models import CannedResponse, ResponseSet, SetVersion, Source

logger = logging.getLogger("mockllm.loading")

SECTIONS = ("responses", "defaults", "settings")
DEFAULTS_KEYS = ("unknown_response",)
# Only plain data tags: Python object tags and other custom tags are refused, never constructed.
SAFE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "omap", "merge")
}
KNOWN_SETTINGS = {"lag_enabled": (bool,), "lag_factor": (int, float)}
MAX_ERRORS_SHOWN = 20
MAX_VALUES = 1_000_000  # values in the file once YAML aliases are expanded: more is an alias bomb


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based, 0 when unknown
    column: int
    message: str

    def describe(self, path: str) -> str:
        return f"{path}:{self.line}:{self.column}: {self.message}" if self.line else f"{path}: {self.message}"


class ResponsesFileError(ValueError):
    """The file cannot be loaded; `problems` says where and why. Nothing was written."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems
        shown = [p.describe(path) for p in problems[:MAX_ERRORS_SHOWN]]
        if len(problems) > MAX_ERRORS_SHOWN:
            shown.append(f"... and {len(problems) - MAX_ERRORS_SHOWN} more problems")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class ParsedEntry:
    prompt: str
    answer: str
    options: dict[str, Any]
    line: int
    digest: str


@dataclass(frozen=True)
class ParsedResponses:
    entries: tuple[ParsedEntry, ...]  # in file order
    unknown_response: str | None
    settings: dict[str, Any] | None
    warnings: tuple[str, ...] = ()

    @property
    def answers(self) -> dict[str, str]:
        """prompt -> answer text, for entries in the original format and quick looks."""
        return {entry.prompt: entry.answer for entry in self.entries}


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


def _where(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _problem(node: yaml.Node, message: str) -> Problem:
    line, column = _where(node)
    return Problem(line, column, message)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _scalar_text(node: yaml.Node) -> str:
    # The text as the user wrote it: `yes:` stays "yes" and `42:` stays "42" instead of becoming
    # True or 42, which would never equal a prompt and so would never match.
    return node.value


def _check_tags(node: yaml.Node, problems: list[Problem], seen: set[int]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:  # aliases share nodes: visit each once, however often it is referenced
            continue
        seen.add(id(current))
        if current.tag not in SAFE_TAGS:
            problems.append(_problem(current, f"the tag {current.tag!r} is not allowed in a responses file"))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def parse_responses(text: str, path: str = "<string>") -> ParsedResponses:
    """Parse and validate a responses file; raise ResponsesFileError naming every problem found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ResponsesFileError(path, [Problem(line, column, f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ResponsesFileError(path, [Problem(0, 0, f"invalid YAML: {exc}")]) from None

    if root is None:
        raise ResponsesFileError(path, [Problem(0, 0, "the file is empty (expected a `responses:` section)")])
    problems: list[Problem] = []
    _check_tags(root, problems, set())
    if problems:
        raise ResponsesFileError(path, problems)
    if not isinstance(root, yaml.MappingNode):
        raise ResponsesFileError(path, [_problem(root, "the file must be a mapping with a `responses:` section")])

    sections: dict[str, yaml.Node] = {}
    for key, value in root.value:
        name = _scalar_text(key) if isinstance(key, yaml.ScalarNode) else None
        if name not in SECTIONS:
            problems.append(_problem(key, f"unknown section {name!r} (expected one of: {', '.join(SECTIONS)})"))
        elif name in sections:
            problems.append(_problem(key, f"section {name!r} appears twice"))
        else:
            sections[name] = value
    if "responses" not in sections:
        problems.append(Problem(1, 1, "the file has no `responses:` section"))

    entries = _parse_entries(sections.get("responses"), problems)
    unknown_response = _parse_defaults(sections.get("defaults"), problems)
    settings = _parse_settings(sections.get("settings"), problems)
    if problems:
        raise ResponsesFileError(path, problems)
    return ParsedResponses(entries=tuple(entries), unknown_response=unknown_response, settings=settings,
                           warnings=tuple(_shadow_warnings(entries)))


def _shadow_warnings(entries: list[ParsedEntry]) -> list[str]:
    """Entries that can never match because an earlier one answers everything they would."""
    compiled = [Entry.build(i + 1, e.prompt, e.answer, e.options, i) for i, e in enumerate(entries)]
    lines = {i + 1: e.line for i, e in enumerate(entries)}
    return [
        f"line {lines[later.id]}: entry {later.id} ({later.prompt[:40]!r}) can never match: entry {earlier.id} "
        f"(line {lines[earlier.id]}, {earlier.kind} {earlier.prompt[:40]!r}) is tried first and answers "
        "everything it would; give it a higher `priority` or move it up"
        for later, earlier in find_shadowed(compiled)
    ]


def _parse_entries(node: yaml.Node | None, problems: list[Problem]) -> list[ParsedEntry]:
    if node is None:
        return []
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return []  # `responses:` with nothing under it: an empty set, said on purpose
    if isinstance(node, yaml.MappingNode):
        entries = _parse_mapping_entries(node, problems)
    elif isinstance(node, yaml.SequenceNode):
        entries = _parse_list_entries(node, problems)
    else:
        problems.append(_problem(node, "`responses` must be a mapping of prompt: answer, or a list of entries"))
        return []
    first: dict[str, ParsedEntry] = {}
    unique = []
    for entry in entries:
        if entry.digest in first:
            earlier = first[entry.digest]
            problems.append(Problem(entry.line, 1, f"the prompt {_short(entry.prompt)} appears twice (first on line "
                                    f"{earlier.line}) with the same matching options"))
        else:
            first[entry.digest] = entry
            unique.append(entry)
    return unique


def _parse_mapping_entries(node: yaml.MappingNode, problems: list[Problem]) -> list[ParsedEntry]:
    """The original format: `prompt: answer` pairs."""
    entries = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            problems.append(_problem(key, "a prompt must be a single string, not a list or a mapping"))
            continue
        if key.tag.endswith(":null") and key.style is None and key.value in ("", "~", "null", "Null", "NULL"):
            problems.append(_problem(key, "a prompt is empty or null; quote it if you mean the text"))
            continue
        prompt = _scalar_text(key)
        if not isinstance(value, yaml.ScalarNode):
            problems.append(_problem(value, f"the answer to {_short(prompt)} must be a string"))
            continue
        if value.tag.endswith(":null") and value.style is None:
            problems.append(
                _problem(value, f"the answer to {_short(prompt)} is missing; write \"\" for an empty answer")
            )
            continue
        entries.append(ParsedEntry(prompt, _scalar_text(value), {}, _where(key)[0], entry_digest(prompt, {})))
    return entries


def _parse_list_entries(node: yaml.SequenceNode, problems: list[Problem]) -> list[ParsedEntry]:
    """The richer format: a list of entries with matching rules and replies (see entries.py)."""
    constructor = yaml.SafeLoader("")
    budget = [MAX_VALUES]
    entries = []
    for number, item in enumerate(node.value, start=1):
        if not isinstance(item, yaml.MappingNode):
            problems.append(_problem(item, f"entry {number} must be a mapping with `match:` and `response:`"))
            continue
        try:
            data = _node_data(item, constructor, budget)
            prompt, answer, options = parse_entry(data)
        except EntryError as exc:
            line = exc.line or _where(item)[0]
            problems.append(Problem(line, 1 if exc.line else _where(item)[1], f"entry {number}: {exc.message}"))
            continue
        except _TooLarge:
            problems.append(_problem(item, "the file expands to too many values (a YAML alias bomb?)"))
            return entries
        entries.append(ParsedEntry(prompt, answer, options, _where(item)[0], entry_digest(prompt, options)))
    return entries


class _TooLarge(Exception):
    pass


def _node_data(node: yaml.Node, constructor: yaml.SafeLoader, budget: list[int]) -> Any:
    """A node as dicts, lists and Scalars (the text as written, the value YAML reads, the line)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        data = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise EntryError("", "keys must be plain names", _where(key)[0])
            data[key.value] = _node_data(value, constructor, budget)
        return data
    if isinstance(node, yaml.SequenceNode):
        return [_node_data(item, constructor, budget) for item in node.value]
    value = constructor.construct_object(node)
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        value = node.value  # dates and the like: keep the text
    return Scalar(node.value, value, _where(node)[0])


def _parse_defaults(node: yaml.Node | None, problems: list[Problem]) -> str | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.append(_problem(node, "`defaults` must be a mapping (for example `unknown_response: ...`)"))
        return None
    unknown_response = None
    for key, value in node.value:
        name = _scalar_text(key) if isinstance(key, yaml.ScalarNode) else None
        if name not in DEFAULTS_KEYS:
            problems.append(_problem(key, f"unknown key {name!r} in `defaults` (expected: {', '.join(DEFAULTS_KEYS)})"))
        elif not isinstance(value, yaml.ScalarNode) or (value.tag.endswith(":null") and value.style is None):
            problems.append(_problem(value, "`defaults.unknown_response` must be a string"))
        else:
            unknown_response = _scalar_text(value)
    return unknown_response


def _parse_settings(node: yaml.Node | None, problems: list[Problem]) -> dict[str, Any] | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.append(_problem(node, "`settings` must be a mapping"))
        return None
    nested = {"timing": parse_timing, "failures": parse_failures, "rate_limits": parse_rate_limits,
              "models": parse_model_rules}
    constructor = yaml.SafeLoader("")
    settings: dict[str, Any] = {}
    for key, value in node.value:
        name = _scalar_text(key) if isinstance(key, yaml.ScalarNode) else None
        if name in nested:
            try:
                settings[name] = nested[name](_node_data(value, constructor, [MAX_VALUES]), f"settings.{name}")
            except EntryError as exc:
                problems.append(Problem(exc.line or _where(value)[0], 1, exc.message))
            except _TooLarge:
                problems.append(_problem(value, "the file expands to too many values (a YAML alias bomb?)"))
            continue
        if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
            problems.append(_problem(key, f"setting {name!r} must be `name: value` with a single value "
                                     f"(the nested settings are: {', '.join(nested)})"))
            continue
        parsed = constructor.construct_object(value)
        expected = KNOWN_SETTINGS.get(name)
        if expected and (not isinstance(parsed, expected) or (bool not in expected and isinstance(parsed, bool))):
            kinds = " or ".join("true/false" if t is bool else "a number" for t in expected)
            problems.append(_problem(value, f"setting {name!r} must be {kinds}, not {value.value!r}"))
            continue
        if isinstance(parsed, (int, float, str, bool)) or parsed is None:
            settings[name] = parsed
        else:
            settings[name] = value.value  # dates and such: keep the text
    return settings


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


def count_removals(parsed: ParsedResponses, source_file: str) -> int:
    """How many rows a load of `parsed` from `source_file` would delete."""
    keep = {entry.digest for entry in parsed.entries}
    stored = CannedResponse.objects.filter(source=Source.FILE, source_file=source_file, scenario="", test_id="")
    return sum(1 for digest in stored.values_list("key_digest", flat=True) if digest not in keep)


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
